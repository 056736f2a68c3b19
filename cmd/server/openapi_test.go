package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/python-executor/python-executor/internal/api"
)

// The OpenAPI document the server embeds, loaded once for every test: do
// validates each response the end-to-end tests receive against it.
var spec = sync.OnceValues(func() (*openapiSpec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("loading openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	// Match the test servers' addresses, not the document's example server.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &openapiSpec{doc: doc, router: router}, nil
})

type openapiSpec struct {
	doc    *openapi3.T
	router routers.Router
}

// checkResponse validates a response against the OpenAPI document: its
// status must be documented for the operation, and its body and headers
// must fit the schema. A response for a path or method the document does
// not have (404, 405) must be the common Error body.
func checkResponse(req *http.Request, status int, header http.Header, body []byte) error {
	s, err := spec()
	if err != nil {
		return err
	}
	route, params, err := s.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s is not in openapi.json, yet answered %d", req.Method, req.URL.Path, status)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		return s.doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
	}
	if err != nil {
		return fmt.Errorf("finding the route of %s %s: %w", req.Method, req.URL.Path, err)
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
		},
		Status:  status,
		Header:  header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

func TestOpenAPIDocument(t *testing.T) {
	if _, err := spec(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(shared.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if binary != "" && !bytes.Equal(got, api.OpenAPI) {
		t.Error("GET /openapi.json is not the embedded document")
	}
	// Every path the server routes is documented, with every method.
	s, _ := spec()
	for _, p := range []string{"/execute", "/v1/execute", "/health", "/ready", "/info", "/metrics", "/openapi.json", "/", "/playground/{file}"} {
		if s.doc.Paths.Find(p) == nil {
			t.Errorf("%s is not in openapi.json", p)
		}
	}
}

// TestOpenAPIRejects checks that the validation has teeth: bodies that
// break the schema are caught.
func TestOpenAPIRejects(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/v1/execute", nil)
	h := http.Header{"Content-Type": {"application/json"}}
	for _, body := range []string{
		`{"outcome":"ok","result":1}`, // members missing
		`{"outcome":"weird","result":1,"error":null,"stdout":"","stdout_truncated":false,"stderr":"","stderr_truncated":false,"usage":{"wall_ms":1,"cpu_ms":1,"memory_peak_mb":1},"files":[],"files_omitted":0,"images":[],"images_omitted":0}`,
		`{"outcome":"ok","result":1,"error":"boom","stdout":"","stdout_truncated":false,"stderr":"","stderr_truncated":false,"usage":{"wall_ms":1,"cpu_ms":1,"memory_peak_mb":1},"files":[],"files_omitted":0,"images":[],"images_omitted":0}`,
	} {
		if err := checkResponse(req, 200, h, []byte(body)); err == nil {
			t.Errorf("accepted %s", body)
		}
	}
	if err := checkResponse(req, 418, h, []byte(`{"error":"x","stdout":""}`)); err == nil {
		t.Error("accepted an undocumented status")
	}
	ok := `{"outcome":"ok","result":null,"error":null,"stdout":"","stdout_truncated":false,"stderr":"","stderr_truncated":false,"usage":{"wall_ms":1.5,"cpu_ms":null,"memory_peak_mb":null},"files":[],"files_omitted":0,"images":[],"images_omitted":0}`
	if err := checkResponse(req, 200, h, []byte(ok)); err != nil {
		t.Errorf("rejected a valid response: %v", err)
	}
}

// validating is an http.RoundTripper that checks every response against
// the OpenAPI document, for clients (internal/client) driven by the tests.
type validating struct {
	t *testing.T
}

func (v validating) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := checkResponse(req, resp.StatusCode, resp.Header, body); err != nil {
		v.t.Errorf("%s %s: response %d does not match openapi.json: %v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
	return resp, nil
}
