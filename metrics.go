package cronofy

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Every metric of the handler is named caddy_cronofy_callback_<name>.
const (
	metricsNamespace = "caddy"
	metricsSubsystem = "cronofy_callback"
)

// Values of the notification_type label besides the known notification
// types. Labels take no value from the body unless it is a known type,
// so a client cannot create unbounded series.
const (
	// notificationTypeNone counts requests whose body was not parsed or
	// has no notification.type.
	notificationTypeNone = "none"
	// notificationTypeOther counts notification types without a schema.
	notificationTypeOther = "other"
)

// callbackMetrics holds the handler's collectors.
type callbackMetrics struct {
	// requests counts every request the handler decided on, by outcome
	// (accepted or a rejection reason code) and notification type.
	requests *prometheus.CounterVec
	// secretMatches counts verified signatures by the index of the
	// client secret that matched, also when a later check rejects the
	// body, so a rotation can be followed per secret.
	secretMatches *prometheus.CounterVec
	// bodySize observes the size of every body read in full.
	bodySize prometheus.Histogram
	// duration observes the time the handler spends on a request, from
	// its start to the decision, which excludes the next handler.
	duration prometheus.Histogram
}

// processMetrics is created once per process and registered in the
// metrics registry of every configuration that uses the handler. Caddy
// creates a new registry for each configuration it loads, so sharing the
// collectors keeps the counters counting across configuration reloads
// instead of starting again from zero.
var processMetrics = sync.OnceValue(func() *callbackMetrics {
	return &callbackMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "requests_total",
			Help:      "Cronofy callback requests by outcome (accepted or the rejection reason) and notification type.",
		}, []string{"outcome", "notification_type"}),
		secretMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "secret_matches_total",
			Help:      "Verified Cronofy callback signatures by the index of the client secret that matched.",
		}, []string{"secret_index"}),
		bodySize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "request_body_size_bytes",
			Help:      "Size of Cronofy callback bodies read in full.",
			// 256 B to 4 MiB: callbacks are a few KiB and the default
			// max_body_size is 256 KiB.
			Buckets: prometheus.ExponentialBuckets(256, 4, 8),
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "handler_duration_seconds",
			Help:      "Time the Cronofy callback handler spends on a request before it rejects it or passes it on, including reading the body.",
			// 100 µs to 6.6 s: verifying a small body takes well under a
			// millisecond, while a slow client uploading its body can
			// take seconds.
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
	}
})

// registerMetrics registers the handler's collectors in registry and
// returns the ones to use. Another route of the same configuration has
// usually registered them already, in which case the registered ones are
// reused, as Caddy's own handlers do.
func registerMetrics(registry prometheus.Registerer) (*callbackMetrics, error) {
	shared := processMetrics()
	m := new(callbackMetrics)
	var err error

	if m.requests, err = registerCollector(registry, shared.requests); err != nil {
		return nil, err
	}
	if m.secretMatches, err = registerCollector(registry, shared.secretMatches); err != nil {
		return nil, err
	}
	if m.bodySize, err = registerCollector(registry, shared.bodySize); err != nil {
		return nil, err
	}
	if m.duration, err = registerCollector(registry, shared.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// registerCollector registers c, or returns the collector of the same
// description that registry already has.
func registerCollector[C prometheus.Collector](registry prometheus.Registerer, c C) (C, error) {
	err := registry.Register(c)
	if err == nil {
		return c, nil
	}

	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, err
}

// initSecretMatches creates the series of every configured secret index,
// so that a secret that never matched shows 0 instead of no series.
func (m *callbackMetrics) initSecretMatches(secretCount int) {
	if m == nil {
		return
	}
	for i := range secretCount {
		m.secretMatches.WithLabelValues(strconv.Itoa(i))
	}
}

// observeRequest counts the decision on one request and the time it took.
// A nil receiver records nothing, for a handler provisioned without a
// metrics registry.
func (m *callbackMetrics) observeRequest(outcome, notificationTypeLabel string, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(outcome, notificationTypeLabel).Inc()
	m.duration.Observe(elapsed.Seconds())
}

func (m *callbackMetrics) observeBodySize(size int) {
	if m == nil {
		return
	}
	m.bodySize.Observe(float64(size))
}

func (m *callbackMetrics) observeSecretMatch(secretIndex int) {
	if m == nil {
		return
	}
	m.secretMatches.WithLabelValues(strconv.Itoa(secretIndex)).Inc()
}

// observeRequest counts the decision on a request that the handler
// started on at start.
func (h *Handler) observeRequest(start time.Time, outcome, notificationType string) {
	h.metrics.observeRequest(outcome, h.notificationTypeLabel(notificationType), time.Since(start))
}

// notificationTypeLabel returns the notification_type label of a
// request: the type itself when this route has a schema for it, the
// family name scheduling_request for every scheduling_request_* type,
// notificationTypeOther for a type without a schema, and
// notificationTypeNone when there is no type.
func (h *Handler) notificationTypeLabel(notificationType string) string {
	if notificationType == "" {
		return notificationTypeNone
	}
	if _, ok := h.typeSchemas[notificationType]; ok {
		return notificationType
	}
	if strings.HasPrefix(notificationType, schedulingRequestPrefix) {
		return "scheduling_request"
	}
	if _, ok := builtinKindForType(notificationType); ok {
		return notificationType
	}
	return notificationTypeOther
}
