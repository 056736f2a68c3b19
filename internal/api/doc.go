// Package api serves the HTTP interface: POST /execute (the seed API, its
// body unchanged), POST /v1/execute (input, files, diagnostics, images),
// GET /health, GET /ready, GET /info and GET /openapi.json, the embedded
// OpenAPI 3.1 document of all of them.
//
// Every response is JSON. Every error, including a bad request, a wrong
// method or an overloaded server, has the shape {"error": "...", "stdout": "..."}.
// One function, status, maps outcomes and errors to HTTP status codes; the
// README documents the table. Clients never see Go error text, paths or pids;
// the log does.
package api
