// Package metrics exposes the service's Prometheus metrics: requests by
// outcome, latency and queue-wait histograms, and the pool's state read at
// scrape time (size, idle, busy, starting, waiting, spawns, retries, kills by
// reason).
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/python-executor/python-executor/internal/pool"
)

// Metrics holds the collectors. Its methods are safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	queueWait prometheus.Histogram
}

// New registers the collectors; stat is read at every scrape.
func New(stat func() pool.Stat) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyexec_requests_total",
			Help: "POST /execute requests by outcome (ok, timeout, memory_limit, exception, ..., bad_request, busy, shutting_down, failed) and HTTP status code (\"200\").",
		}, []string{"outcome", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pyexec_request_duration_seconds",
			Help:    "POST /execute latency, from request to response, by outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pyexec_queue_wait_seconds",
			Help:    "Time a job waited for a free worker.",
			Buckets: []float64{.0001, .001, .005, .01, .05, .1, .5, 1, 5, 10},
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.queueWait, poolCollector{stat},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format, without the
// process collector's network counters: they count the whole network
// namespace the server runs in, the host's traffic at basic level, from
// which an observer read the size of another tenant's requests to the byte
// (outside attack round 13).
func (m *Metrics) Handler() http.Handler {
	gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := m.reg.Gather()
		return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
			return strings.HasPrefix(mf.GetName(), "process_network_")
		}), err
	})
	return promhttp.HandlerFor(gather, promhttp.HandlerOpts{})
}

// Request records one finished POST /execute.
func (m *Metrics) Request(outcome string, code int, d time.Duration) {
	m.requests.WithLabelValues(outcome, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(outcome).Observe(d.Seconds())
}

// QueueWait records how long a job waited for a worker.
func (m *Metrics) QueueWait(d time.Duration) { m.queueWait.Observe(d.Seconds()) }

var (
	workersDesc  = prometheus.NewDesc("pyexec_pool_workers", "Workers by state.", []string{"state"}, nil)
	sizeDesc     = prometheus.NewDesc("pyexec_pool_size", "Configured number of warm workers (0: cold mode).", nil, nil)
	waitingDesc  = prometheus.NewDesc("pyexec_pool_waiting_requests", "Requests waiting for a worker.", nil, nil)
	spawnsDesc   = prometheus.NewDesc("pyexec_worker_spawns_total", "Workers started.", nil, nil)
	spawnErrDesc = prometheus.NewDesc("pyexec_worker_spawn_failures_total", "Workers that failed to start.", nil, nil)
	retriesDesc  = prometheus.NewDesc("pyexec_job_retries_total", "Jobs offered to another worker because theirs failed before the job reached it.", nil, nil)
	killsDesc    = prometheus.NewDesc("pyexec_worker_kills_total", "Workers destroyed, by reason (cancelled, unresponsive, exited, protocol, not_delivered, not_ready, died_idle).", []string{"reason"}, nil)
)

type poolCollector struct{ stat func() pool.Stat }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{workersDesc, sizeDesc, waitingDesc, spawnsDesc, spawnErrDesc, retriesDesc, killsDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(s.Busy), "busy")
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(s.Starting), "starting")
	ch <- prometheus.MustNewConstMetric(sizeDesc, prometheus.GaugeValue, float64(s.Size))
	ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(s.Waiting))
	ch <- prometheus.MustNewConstMetric(spawnsDesc, prometheus.CounterValue, float64(s.Spawns))
	ch <- prometheus.MustNewConstMetric(spawnErrDesc, prometheus.CounterValue, float64(s.SpawnFailures))
	ch <- prometheus.MustNewConstMetric(retriesDesc, prometheus.CounterValue, float64(s.Retries))
	for reason, n := range s.Kills {
		ch <- prometheus.MustNewConstMetric(killsDesc, prometheus.CounterValue, float64(n), reason)
	}
}
