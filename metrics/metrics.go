// Package metrics exposes the instance's Prometheus metrics at /metrics and
// keeps a short in-memory history of them for the operations view.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the instance's collectors.
type Metrics struct {
	reg *prometheus.Registry

	Requests        *prometheus.CounterVec   // by route, method, status
	RequestDuration *prometheus.HistogramVec // by route (streams excluded)
	Committed       prometheus.Counter       // events committed by this instance
	Dispatched      prometheus.Counter       // events handed to the live channels
	DispatchLag     prometheus.Histogram     // event time → dispatch
	Errors          *prometheus.CounterVec   // by code: unavailable, internal
	Polls           PollCounter              // poll responses (events and lists)
	now             func() time.Time
}

// New returns the metrics with the Go and process collectors registered.
func New(now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg, now: now,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clinicpulse_http_requests_total", Help: "HTTP responses by route pattern, method and status (poll 200/304/410/429 among them).",
		}, []string{"route", "method", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "clinicpulse_http_request_duration_seconds", Help: "Time to answer a request, streams excluded.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"route"}),
		Committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clinicpulse_events_committed_total", Help: "Events committed to the change log by this instance.",
		}),
		Dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clinicpulse_events_dispatched_total", Help: "Events handed in seq order to this instance's streams, long-polls and ETag heads.",
		}),
		DispatchLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "clinicpulse_event_dispatch_lag_seconds", Help: "From the writing transaction's time to dispatch on this instance (includes the cross-instance NOTIFY path).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clinicpulse_errors_total", Help: "Server-side errors by code (unavailable: the database did not answer; internal).",
		}, []string{"code"}),
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.Committed, m.Dispatched, m.DispatchLag, m.Errors)
	return m
}

// Gauge registers a gauge read from fn at scrape time.
func (m *Metrics) Gauge(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Counter registers a counter read from fn at scrape time (fn must only grow).
func (m *Metrics) Counter(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// CounterL registers a counter with constant labels read from fn at
// scrape time (fn must only grow); several may share a name with other
// label values.
func (m *Metrics) CounterL(name, help string, labels prometheus.Labels, fn func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, fn))
}

// Register adds a collector.
func (m *Metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

// Handler serves the Prometheus exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Gather returns the current samples (for tests and the ops view).
func (m *Metrics) Gather() (map[string]float64, error) {
	mfs, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				key += "|" + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case mt.Counter != nil:
				out[key] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				out[key] = mt.Gauge.GetValue()
			case mt.Histogram != nil:
				out[key+"|count"] = float64(mt.Histogram.GetSampleCount())
				out[key+"|sum"] = mt.Histogram.GetSampleSum()
			}
		}
	}
	return out, nil
}

// Publish counts dispatched events and their lag: the relay sink.
func (m *Metrics) Publish(_ string, evs []models.Event) {
	now := m.now()
	m.Dispatched.Add(float64(len(evs)))
	for _, e := range evs {
		m.DispatchLag.Observe(now.Sub(e.At).Seconds())
	}
}

// Labels names a request for the metrics: route is a registered route
// pattern (or one fixed value for none), method one of a fixed set (or one
// fixed value for the rest). Never a raw path or method: each distinct label
// value is a series kept until restart, and both are the caller's to choose.
type Labels func(c echo.Context) (route, method string)

// Middleware counts every response by route pattern, method and status.
// Durations are kept for all but long-lived routes (the stream).
// isPoll names the routes whose GETs are polls.
func (m *Metrics) Middleware(status func(error) int, labels Labels, longLived, isPoll func(route string) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := m.now()
			err := next(c)
			m.observe(c, start, err, status, labels, longLived, isPoll)
			return err
		}
	}
}

// observe is kept out of the middleware's frame, which an idle stream's
// goroutine holds for hours: a small frame lets its stack shrink.
//
//go:noinline
func (m *Metrics) observe(c echo.Context, start time.Time, err error, status func(error) int, labels Labels, longLived, isPoll func(string) bool) {
	code := c.Response().Status
	if err != nil {
		code = status(err)
	}
	route, method := labels(c)
	m.Requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	if method == http.MethodGet && isPoll(route) {
		m.Polls.Total.Add(1)
		if code == http.StatusNotModified {
			m.Polls.NotModified.Add(1)
		}
	}
	if !longLived(route) {
		m.RequestDuration.WithLabelValues(route).Observe(m.now().Sub(start).Seconds())
	}
	switch {
	case code == http.StatusServiceUnavailable:
		m.Errors.WithLabelValues(models.EUNAVAILABLE).Inc()
	case code >= 500:
		m.Errors.WithLabelValues(models.EINTERNAL).Inc()
	}
}
