// Package client is a Go client for python-executor's HTTP API: POST
// /v1/execute, GET /health and GET /info.
//
// A Client is configured once (server, API key, HTTP client, retry policy)
// and is then safe for concurrent use. Every call takes a context that
// bounds it, including the waits between retries. Only responses the server
// gives before it runs anything (503 busy or shutting down, 429 per-key
// limit) are retried, honouring Retry-After, so a script never runs twice
// because of a retry. A script that fails is not a Go error: Execute returns
// a Result whose Outcome and Error say how it failed; Go errors are for
// requests the server refused (*APIError) and transport failures.
package client
