// Package api serves the HTTP interface: POST /execute (the seed API, its
// body unchanged), POST /v1/execute (input, files, diagnostics, images; with
// Accept: text/event-stream, live output as server-sent events, see
// stream.go), GET /health, GET /ready, GET /info, GET /metrics and
// GET /openapi.json, the embedded OpenAPI 3.1 document of all of them, and
// the playground page (package playground) at GET /.
//
// Every response but the page and the event streams is JSON. Every error,
// including a bad request, a wrong method or an overloaded server, has the
// shape {"error": "...", "stdout": "..."}.
// One function, status, maps outcomes and errors to HTTP status codes; the
// README documents the table. Clients never see Go error text, paths or pids;
// the log does.
//
// An answer sent before the request body was read to its end (a 413 on
// Content-Length, 401, 404, 405, 429) closes the connection after a bounded
// lingering close (see linger), so that clients that send their whole body
// before reading get the answer rather than a connection reset.
package api
