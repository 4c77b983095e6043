package apptest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/clinicpulse/clinicpulse/api/openapi"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The contract. A test server's handler is wrapped by a validator of the
// API's OpenAPI document (api/openapi/openapi.json) with kin-openapi's
// openapi3filter: every request a test sends through a Server, and every
// response it gets, is checked against it, and each mismatch fails the test
// with the method, the request's path and query, the status and the
// validator's message. The rules:
//
//  1. The response must conform, whatever the request: its status is one
//     the operation documents (a 500 never is), its documented headers are
//     present and match, and its body matches the schema of its media type
//     (response schemas forbid undocumented fields). Exceptions, where a
//     body cannot be checked: a HEAD response (status and headers, checked
//     against the HEAD operation), a 304 (status and headers), and a
//     text/event-stream (status and headers, checked when the headers are
//     sent: the stream goes on after the test).
//  2. The request is validated too, but a request the document calls
//     invalid fails the test only when the server accepted it (a status
//     below 400). Hostile-input tests send invalid requests on purpose and
//     expect a 4xx: the document agrees the request is invalid, and rule 1
//     still checks that the refusal is a documented problem. A valid
//     request refused with a 4xx is not a mismatch either: the document
//     cannot express every rule (an overlapping booking is valid JSON).
//  3. A request for which the document has no operation must be refused: a
//     path it does not have answers 404 (or 401 under /api/v1), a method
//     the path lacks answers 405 with Allow (or 401); both as problem+json.
//     Any other answer is an undocumented route.
//
// Mismatches are reported when the server stops (Stop, at the latest when
// the test ends), after every handler has returned. Paths under /static/
// are matched to /static/{file} whatever their depth (an OpenAPI path
// parameter is one segment), and so are /static and /static/, which the
// server's /static* route serves too. Benchmarks are not validated: the
// validator's cost would be measured with the server's.

// contract validates exchanges with one test server and keeps the
// mismatches until the server stops.
type contract struct {
	next     http.Handler
	router   routers.Router
	mu       sync.Mutex
	failures []string
}

// loadDocument parses and validates the document once per test binary.
var loadDocument = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Source)
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	return gorillamux.NewRouter(doc)
})

func newContract(next http.Handler) (*contract, error) {
	r, err := loadDocument()
	if err != nil {
		return nil, err
	}
	return &contract{next: next, router: r}, nil
}

// Failures returns the mismatches found so far.
func (c *contract) Failures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.failures...)
}

func (c *contract) fail(x *exchange, format string, args ...any) {
	msg := fmt.Sprintf("openapi: %s %s → %d: %s", x.method, x.target, x.status(), fmt.Sprintf(format, args...))
	c.mu.Lock()
	c.failures = append(c.failures, msg)
	c.mu.Unlock()
}

// Bounds of what an exchange keeps for validation; past them the body is
// not validated (no test sends or gets that much).
const (
	maxRequestCapture  = 4 << 20
	maxResponseCapture = 64 << 20
)

// exchange is one request and its response as the validator sees them.
type exchange struct {
	method, target string
	req            *http.Request // a clone taken before the handler ran
	reqBody        capture
	res            recorder
	checked        bool
}

func (x *exchange) status() int { return x.res.code }

func (c *contract) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{method: r.Method, target: r.URL.RequestURI(), req: r.Clone(context.Background())}
	x.target = cut(x.target, 300)
	x.reqBody.limit = maxRequestCapture
	if r.Body != nil && r.Body != http.NoBody {
		x.reqBody.r = r.Body
		r.Body = &x.reqBody
	}
	x.res = recorder{ResponseWriter: w, onHeader: func() { c.headerSent(x) }}
	c.next.ServeHTTP(&x.res, r)
	if !x.res.wrote {
		x.res.code, x.res.header = http.StatusOK, w.Header().Clone()
	}
	if !x.checked {
		// The handler may have left part of the body unread: read the
		// rest (bounded) of an accepted request so that it is judged whole
		// (a refused one is not judged, and may never end).
		if x.reqBody.r != nil && x.status() < 400 {
			_, _ = io.CopyN(io.Discard, &x.reqBody, maxRequestCapture+1)
		}
		c.check(x)
	}
}

// headerSent checks an exchange whose body will not be seen: a stream, when
// its headers go out.
func (c *contract) headerSent(x *exchange) {
	if isEventStream(x.res.header) {
		c.check(x)
	}
}

// check validates the exchange once (rules in the comment above).
func (c *contract) check(x *exchange) {
	x.checked = true
	status := x.status()
	route, params, err := c.findRoute(x.req)
	if err != nil {
		c.checkUnrouted(x, err)
		return
	}
	op := route.Operation
	reqIn := &openapi3filter.RequestValidationInput{
		Request: x.req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:         credentialsPresent,
			SkipSettingDefaults:        true,
			ExcludeReadOnlyValidations: true,
			SchemaValidationOptions:    []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
		},
	}
	if x.reqBody.overflow {
		reqIn.Options.ExcludeRequestBody = true
	} else if x.req.Body != nil && x.req.Body != http.NoBody {
		x.req.Body = io.NopCloser(bytes.NewReader(x.reqBody.buf.Bytes()))
		x.req.GetBody = nil
	}
	if err := openapi3filter.ValidateRequest(context.Background(), reqIn); err != nil && status < 400 {
		c.fail(x, "the server accepted a request the document calls invalid: %s", short(err))
	}

	resp := op.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		c.fail(x, "status %d is not documented for %s %s", status, route.Method, route.Path)
		return
	}
	switch {
	case x.method == http.MethodHead, status == http.StatusNotModified, isEventStream(x.res.header):
		// No body to check: the status and headers.
		for _, e := range checkHeaders(resp.Value, x.res.header) {
			c.fail(x, "%s", e)
		}
		if x.method != http.MethodHead && isEventStream(x.res.header) && resp.Value.Content.Get(x.res.header.Get("Content-Type")) == nil {
			c.fail(x, "Content-Type %q is not documented", x.res.header.Get("Content-Type"))
		}
		return
	}
	if len(resp.Value.Content) == 0 && x.res.body.Len() > 0 {
		c.fail(x, "a body of %d bytes where the document has none", x.res.body.Len())
		return
	}
	resIn := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqIn, Status: status, Header: x.res.header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			ExcludeResponseBody:     x.res.overflow,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
		},
	}
	resIn.SetBodyBytes(x.res.body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), resIn); err != nil {
		c.fail(x, "response: %s", short(err))
	}
}

// findRoute finds the operation of a request. The server's route for the
// dashboards is /static* (any path that starts so, as Echo matches it):
// /static, /static/ and paths under /static/ of any depth are matched to
// /static/{file}.
func (c *contract) findRoute(r *http.Request) (*routers.Route, map[string]string, error) {
	if file, ok := strings.CutPrefix(r.URL.Path, "/static"); ok && (file == "" || file == "/" || strings.Contains(file[1:], "/")) {
		if file = strings.TrimPrefix(file, "/"); file == "" {
			file = "." // the directory itself (a path parameter cannot be empty)
		}
		one := r.Clone(r.Context())
		one.URL.Path, one.URL.RawPath = "/static/x", ""
		route, params, err := c.router.FindRoute(one)
		if err == nil {
			params["file"] = file
		}
		return route, params, err
	}
	return c.router.FindRoute(r)
}

// checkUnrouted applies rule 3 to a request the document has no operation
// for.
func (c *contract) checkUnrouted(x *exchange, err error) {
	status := x.status()
	var allowed []int
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		allowed = []int{http.StatusNotFound}
	case errors.Is(err, routers.ErrMethodNotAllowed):
		allowed = []int{http.StatusMethodNotAllowed}
		if status == http.StatusMethodNotAllowed && x.res.header.Get("Allow") == "" {
			c.fail(x, "405 without Allow")
		}
	default:
		c.fail(x, "route: %v", err)
		return
	}
	if strings.HasPrefix(x.req.URL.Path, "/api/v1/") || x.req.URL.Path == "/api/v1" {
		allowed = append(allowed, http.StatusUnauthorized)
	}
	ok := false
	for _, s := range allowed {
		ok = ok || s == status
	}
	if !ok {
		c.fail(x, "the document has no such operation (%v), and the server did not refuse it with %v", err, allowed)
		return
	}
	if ct := x.res.header.Get("Content-Type"); ct != "application/problem+json" {
		c.fail(x, "a refusal with Content-Type %q, not application/problem+json", ct)
	}
}

// credentialsPresent is the validator's AuthenticationFunc: the document's
// schemes are satisfied by the credential's presence (the server decides
// whether it is good; a request without one that the server accepts is a
// mismatch).
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	switch in.SecuritySchemeName {
	case "bearer":
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return nil
		}
		return in.NewError(errors.New("no Authorization: Bearer header"))
	case "ticket":
		if r.URL.Query().Get("ticket") != "" {
			return nil
		}
		return in.NewError(errors.New("no ticket parameter"))
	}
	return in.NewError(fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName))
}

// checkHeaders checks a response's headers against the documented ones,
// for the responses whose body the validator does not read (HEAD, 304,
// streams): each required one present, each present one matching its
// schema (strings, and integers parsed as such).
func checkHeaders(resp *openapi3.Response, h http.Header) []string {
	var errs []string
	for name, ref := range resp.Headers {
		hd := ref.Value
		v, present := h[http.CanonicalHeaderKey(name)]
		if !present || len(v) == 0 {
			if hd.Required {
				errs = append(errs, fmt.Sprintf("header %s is missing", name))
			}
			continue
		}
		if hd.Schema == nil || hd.Schema.Value == nil {
			continue
		}
		s := hd.Schema.Value
		var value any = v[0]
		if s.Type.Is(openapi3.TypeInteger) {
			n, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil {
				errs = append(errs, fmt.Sprintf("header %s: %q is not an integer", name, v[0]))
				continue
			}
			value = float64(n)
		}
		if err := s.VisitJSON(value, openapi3.DisableSchemaErrorDetails()); err != nil {
			errs = append(errs, fmt.Sprintf("header %s: %q: %v", name, v[0], err))
		}
	}
	return errs
}

func isEventStream(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "text/event-stream"
}

// short cuts a validator message to a readable length.
func short(err error) string { return cut(err.Error(), 1500) }

// cut shortens s to at most n bytes of whole UTF-8 sequences, marked "…".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// capture keeps what the handler reads of a request body, up to limit.
type capture struct {
	r        io.ReadCloser
	buf      bytes.Buffer
	limit    int
	overflow bool
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && !c.overflow {
		if c.buf.Len()+n > c.limit {
			c.overflow = true
		} else {
			c.buf.Write(p[:n])
		}
	}
	return n, err
}

func (c *capture) Close() error { return c.r.Close() }

// recorder passes a response through and keeps its status, its header
// fields as sent, and its body (bounded; never a stream's). It keeps the
// writer's optional interfaces reachable: Flush and Hijack directly (a
// hijacked stream sends 200 itself), the rest through Unwrap
// (http.ResponseController).
type recorder struct {
	http.ResponseWriter
	code     int
	header   http.Header
	wrote    bool
	body     bytes.Buffer
	overflow bool
	onHeader func()
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 {
		r.code, r.wrote, r.header = code, true, r.ResponseWriter.Header().Clone()
		r.ResponseWriter.WriteHeader(code)
		r.onHeader()
		return
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	if !isEventStream(r.header) && !r.overflow {
		if r.body.Len()+len(p) > maxResponseCapture {
			r.overflow = true
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && !r.wrote {
		// The handler writes its own status line: a hijacking stream
		// sends 200 with the header fields it set.
		r.code, r.wrote, r.header = http.StatusOK, true, r.ResponseWriter.Header().Clone()
		r.onHeader()
	}
	return conn, brw, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
