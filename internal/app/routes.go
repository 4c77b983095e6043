package app

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
)

// routeTable is the set of (method, route pattern) the server has, kept as
// routes are added (Echo's OnAddRouteHandler). It decides three things a
// request may not choose freely:
//   - the route and method labels of metrics and log lines: a registered
//     pattern or "unmatched", a routed method or "other" (issue 10 item 1:
//     a caller's method or path never becomes a label or a log field);
//   - HEAD: every GET route gets a HEAD route with the same handler and
//     middleware (RFC 9110 §9.3.2), so a route added later cannot forget it;
//   - the Allow header of a 405 (RFC 9110 §15.5.6), asked of Echo's router.
type routeTable struct {
	e    *echo.Echo
	mu   sync.Mutex // serialises adds
	snap atomic.Pointer[routeSnapshot]
}

type routeSnapshot struct {
	// methods maps a route pattern to its methods (Echo's RouteNotFound
	// catch-alls have none).
	methods map[string]map[string]bool
	// routed is every method some route has, plus OPTIONS.
	routed map[string]bool
}

// Label values for what is not in the table.
const (
	unmatchedRoute = "unmatched"
	otherMethod    = "other"
)

// allowOrder is the order methods are listed in an Allow header.
var allowOrder = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
	http.MethodConnect, http.MethodTrace,
}

// newRouteTable hooks the table into e; call it before any route is added.
func newRouteTable(e *echo.Echo) *routeTable {
	t := &routeTable{e: e}
	t.snap.Store(&routeSnapshot{methods: map[string]map[string]bool{}, routed: map[string]bool{http.MethodOptions: true}})
	e.OnAddRouteHandler = t.added
	return t
}

// added records a route and gives every GET route its HEAD. Echo calls it
// after the route is in the router, with the route's full middleware (a
// group's included).
func (t *routeTable) added(host string, r echo.Route, h echo.HandlerFunc, mw []echo.MiddlewareFunc) {
	t.mu.Lock()
	old := t.snap.Load()
	next := &routeSnapshot{methods: make(map[string]map[string]bool, len(old.methods)+1), routed: make(map[string]bool, len(old.routed)+1)}
	for p, ms := range old.methods {
		next.methods[p] = ms
	}
	for m := range old.routed {
		next.routed[m] = true
	}
	ms := make(map[string]bool, len(old.methods[r.Path])+1)
	for m := range old.methods[r.Path] {
		ms[m] = true
	}
	if r.Method != echo.RouteNotFound {
		ms[r.Method] = true
		next.routed[r.Method] = true
	}
	next.methods[r.Path] = ms
	t.snap.Store(next)
	needHead := r.Method == http.MethodGet && host == "" && !ms[http.MethodHead]
	t.mu.Unlock()
	if needHead {
		// The same handler and middleware: HEAD is answered as GET, and
		// net/http sends the headers without the body. A handler that
		// must not produce a body at all (the stream) checks the method.
		t.e.Add(http.MethodHead, r.Path, h, mw...)
	}
}

// routeLabel is the request's route pattern, or "unmatched": never the path.
func (t *routeTable) routeLabel(c echo.Context) string {
	p := c.Path()
	if _, ok := t.snap.Load().methods[p]; !ok || p == "" {
		return unmatchedRoute
	}
	return p
}

// methodLabel is the method when some route has it (or OPTIONS), else "other".
func (t *routeTable) methodLabel(method string) string {
	if t.snap.Load().routed[method] {
		return method
	}
	return otherMethod
}

// labels names a request for metrics and logs.
func (t *routeTable) labels(c echo.Context) (route, method string) {
	return t.routeLabel(c), t.methodLabel(c.Request().Method)
}

// allowed returns the methods the request's path has, in allowOrder: the
// methods m for which Echo's router finds a route of m itself (not a
// catch-all or a 405). Empty when the path is unknown.
func (t *routeTable) allowed(r *http.Request) []string {
	snap := t.snap.Load()
	path := echo.GetPath(r)
	var out []string
	for _, m := range allowOrder {
		if !snap.routed[m] {
			continue
		}
		c := t.e.NewContext(r, nil)
		t.e.Router().Find(m, path, c)
		if snap.methods[c.Path()][m] {
			out = append(out, m)
		}
	}
	return out
}

// methodNotAllowed answers a request whose path exists with other methods:
// 405 problem+json with Allow (RFC 9110 §15.5.6) — also under a group,
// whose catch-all route would otherwise answer 404 — and OPTIONS with 204
// and Allow. A path no route has stays 404. Under a group the answer comes
// before the group's middleware: the methods of a path are no secret (the
// OpenAPI document lists them), so OPTIONS and a wrong method need no token,
// as on the routes outside the group (and on /api/v1/openapi.json, which
// is public).
func (t *routeTable) methodNotAllowed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if ms, ok := t.snap.Load().methods[c.Path()]; ok && len(ms) == 0 {
			// A group's catch-all: answer a known path's 405 or OPTIONS
			// here, before the group's authentication.
			if done, err := t.answerMethod(c); done {
				return err
			}
		}
		err := next(c)
		var he *echo.HTTPError
		if err == nil || !errors.As(err, &he) || (he.Code != http.StatusNotFound && he.Code != http.StatusMethodNotAllowed) {
			return err
		}
		if done, aerr := t.answerMethod(c); done {
			return aerr
		}
		return err
	}
}

// answerMethod answers a request for a known path with a method the path
// lacks (405 with Allow, or OPTIONS 204 with Allow); done is false when the
// path is unknown or has the method (a 404 of the resource itself, such as
// a missing file).
func (t *routeTable) answerMethod(c echo.Context) (done bool, err error) {
	r := c.Request()
	allow := t.allowed(r)
	if len(allow) == 0 {
		return false, nil
	}
	for _, m := range allow {
		if m == r.Method {
			return false, nil
		}
	}
	value := strings.Join(append(allow, http.MethodOptions), ", ")
	c.Response().Header().Set(echo.HeaderAllow, value)
	if r.Method == http.MethodOptions {
		return true, c.NoContent(http.StatusNoContent)
	}
	return true, models.Errorf(models.EMETHOD, "this resource allows %s", value)
}
