// Package api serves the HTTP interface: POST /execute, GET /health,
// GET /ready and GET /info.
//
// Every response is JSON. Every error, including a bad request, a wrong
// method or an overloaded server, has the shape {"error": "...", "stdout": "..."}.
// One function, status, maps outcomes and errors to HTTP status codes; the
// README documents the table. Clients never see Go error text, paths or pids;
// the log does.
package api
