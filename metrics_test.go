package cronofy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Client secrets of the metrics tests: index 0 is the old secret of a
// rotation and index 1 the new one.
const (
	metricsOldSecret = "CRN_metricsOldSecret0aB1cD2eF3gH4iJ5kL6"
	metricsNewSecret = "CRN_metricsNewSecret0aB1cD2eF3gH4iJ5kL6"
)

// metricsSnapshot holds the handler's metrics from one scrape.
type metricsSnapshot struct {
	// requests is keyed by "outcome/notification_type".
	requests map[string]float64
	// matches is keyed by secret_index.
	matches       map[string]float64
	bodySizeCount uint64
	bodySizeSum   float64
	durationCount uint64
}

// scrapeMetrics reads the handler's metrics from a metrics endpoint.
func scrapeMetrics(t *testing.T, url string) metricsSnapshot {
	t.Helper()

	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: status %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the metrics of %s: %v", url, err)
	}

	snapshot := metricsSnapshot{requests: map[string]float64{}, matches: map[string]float64{}}
	for _, m := range metricsOf(families, "caddy_cronofy_callback_requests_total") {
		key := labelValue(m, "outcome") + "/" + labelValue(m, "notification_type")
		snapshot.requests[key] = m.GetCounter().GetValue()
	}
	for _, m := range metricsOf(families, "caddy_cronofy_callback_secret_matches_total") {
		snapshot.matches[labelValue(m, "secret_index")] = m.GetCounter().GetValue()
	}
	for _, m := range metricsOf(families, "caddy_cronofy_callback_request_body_size_bytes") {
		snapshot.bodySizeCount = m.GetHistogram().GetSampleCount()
		snapshot.bodySizeSum = m.GetHistogram().GetSampleSum()
	}
	for _, m := range metricsOf(families, "caddy_cronofy_callback_handler_duration_seconds") {
		snapshot.durationCount = m.GetHistogram().GetSampleCount()
	}
	return snapshot
}

func metricsOf(families map[string]*dto.MetricFamily, name string) []*dto.Metric {
	if family, ok := families[name]; ok {
		return family.GetMetric()
	}
	return nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, label := range m.GetLabel() {
		if label.GetName() == name {
			return label.GetValue()
		}
	}
	return ""
}

// metricsConfig returns a Caddyfile with a metrics endpoint at /metrics
// and a guard at /cronofy/* in front of upstream.
func metricsConfig(httpPort, httpsPort int, upstream *recordingUpstream, secrets ...string) string {
	var lines []string
	for _, secret := range secrets {
		lines = append(lines, "secret "+secret)
	}
	return globalOptions(httpPort, httpsPort) + fmt.Sprintf(`
:%d {
	handle /metrics {
		metrics
	}
	handle /cronofy/* {
		cronofy_callback {
			%s
			max_body_size 4KiB
		}
		reverse_proxy %s
	}
}
`, httpPort, strings.Join(lines, "\n\t\t\t"), upstream.addr())
}

// metricsCase is one request of the mix sent to the guard, with the
// requests_total series and the secret index it must count under.
type metricsCase struct {
	request     callbackRequest
	wantStatus  int
	wantSeries  string // "outcome/notification_type"
	wantMatched string // secret_index, "" when no secret matches
	bodyRead    bool   // whether the guard reads the body in full
}

func metricsCases(t *testing.T) []metricsCase {
	smartInvite := readCallbackFile(t, "testdata/smart_invite.json")
	verification := readCallbackFile(t, "testdata/callbacks/verification.json")
	schedulingRequest := readCallbackFile(t, "testdata/callbacks/scheduling_request_time_chosen.json")
	badStatus := []byte(strings.Replace(string(smartInvite), `"tentative"`, `"maybe"`, 1))
	unknownType := []byte(`{"notification":{"type":"widget_created"}}`)
	good := sign([]byte(metricsOldSecret), smartInvite)

	gzip := signedCallback("gzip", metricsOldSecret, smartInvite)
	gzip.header = http.Header{"Content-Encoding": {"gzip"}}
	get := signedCallback("GET", metricsOldSecret, nil)
	get.method = http.MethodGet
	plain := signedCallback("text/plain", metricsOldSecret, smartInvite)
	plain.contentType = "text/plain"

	return []metricsCase{
		{signedCallback("old secret", metricsOldSecret, smartInvite), 200, "accepted/smart_invite", "0", true},
		{signedCallback("old secret again", metricsOldSecret, smartInvite), 200, "accepted/smart_invite", "0", true},
		{signedCallback("new secret", metricsNewSecret, verification), 200, "accepted/verification", "1", true},
		{signedCallback("scheduler", metricsNewSecret, schedulingRequest), 200, "accepted/scheduling_request", "1", true},
		{signedCallback("unknown type", metricsNewSecret, unknownType), 200, "accepted/other", "1", true},
		{get, 405, "method_not_allowed/none", "", false},
		{callbackRequest{name: "unsigned", body: smartInvite}, 401, "missing_signature/none", "", false},
		{callbackRequest{name: "hex digest", body: smartInvite, signature: strings.Repeat("ab", 32)}, 401, "malformed_signature/none", "", false},
		{callbackRequest{name: "nine digests", body: smartInvite, signature: strings.Repeat(good+",", 9)}, 401, "too_many_digests/none", "", false},
		{gzip, 415, "unsupported_content_encoding/none", "", false},
		{plain, 415, "unsupported_media_type/none", "", false},
		{signedCallback("too large", metricsOldSecret, make([]byte, 5000)), 413, "body_too_large/none", "", false},
		{signedCallback("wrong secret", "not-a-configured-secret", smartInvite), 401, "signature_mismatch/none", "", true},
		{signedCallback("trailing comma", metricsOldSecret, []byte(`{"a":1,}`)), 400, "invalid_json/none", "0", true},
		{signedCallback("no type", metricsOldSecret, []byte(`{"notification":{}}`)), 422, "missing_notification_type/none", "0", true},
		{signedCallback("numeric type", metricsOldSecret, []byte(`{"notification":{"type":7}}`)), 422, "invalid_notification_type/none", "0", true},
		{signedCallback("bad status", metricsNewSecret, badStatus), 422, "schema_violation/smart_invite", "1", true},
	}
}

func readCallbackFile(t *testing.T, path string) []byte {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// sendMetricsMix sends every case to the guard at url, checks each
// status and returns the expected growth of each series.
func sendMetricsMix(t *testing.T, client *http.Client, url string, cases []metricsCase) (requests, matches map[string]float64, bodies int) {
	t.Helper()

	requests, matches = map[string]float64{}, map[string]float64{}
	for _, c := range cases {
		resp, reply := c.request.send(t, client, url)
		if resp.StatusCode != c.wantStatus {
			t.Errorf("%s: got status %d (%q), want %d", c.request.name, resp.StatusCode, reply, c.wantStatus)
		}
		requests[c.wantSeries]++
		if c.wantMatched != "" {
			matches[c.wantMatched]++
		}
		if c.bodyRead {
			bodies++
		}
	}
	return requests, matches, bodies
}

// checkGrowth compares how much each series grew between two scrapes
// with want, and checks that no other series grew.
func checkGrowth(t *testing.T, metric string, before, after, want map[string]float64) {
	t.Helper()
	for key, value := range after {
		if got := value - before[key]; got != want[key] {
			t.Errorf("%s{%s}: grew by %v, want %v", metric, key, got, want[key])
		}
	}
	for key := range want {
		if _, ok := after[key]; !ok {
			t.Errorf("%s{%s}: no series, want growth by %v", metric, key, want[key])
		}
	}
}

func TestMetricsCountOutcomes(t *testing.T) {
	ports := freePorts(t, 2)
	upstream := newRecordingUpstream(t)
	tester := loadCaddyfile(t, metricsConfig(ports[0], ports[1], upstream, metricsOldSecret, metricsNewSecret))
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	cases := metricsCases(t)

	before := scrapeMetrics(t, base+"/metrics")
	requests, matches, bodies := sendMetricsMix(t, tester.Client, base+"/cronofy/callback", cases)
	after := scrapeMetrics(t, base+"/metrics")

	checkGrowth(t, "caddy_cronofy_callback_requests_total", before.requests, after.requests, requests)
	checkGrowth(t, "caddy_cronofy_callback_secret_matches_total", before.matches, after.matches, matches)
	if got := after.durationCount - before.durationCount; got != uint64(len(cases)) {
		t.Errorf("handler_duration_seconds count grew by %d, want %d", got, len(cases))
	}
	if got := after.bodySizeCount - before.bodySizeCount; got != uint64(bodies) {
		t.Errorf("request_body_size_bytes count grew by %d, want %d", got, bodies)
	}
	var wantSum float64
	for _, c := range cases {
		if c.bodyRead {
			wantSum += float64(len(c.request.body))
		}
	}
	if got := after.bodySizeSum - before.bodySizeSum; got != wantSum {
		t.Errorf("request_body_size_bytes sum grew by %v, want %v", got, wantSum)
	}
	if got := len(upstream.received()); got != 5 {
		t.Errorf("upstream received %d requests, want the 5 accepted ones", got)
	}
}

func TestMetricsSurviveReload(t *testing.T) {
	ports := freePorts(t, 2)
	upstream := newRecordingUpstream(t)
	tester := loadCaddyfile(t, metricsConfig(ports[0], ports[1], upstream, metricsOldSecret, metricsNewSecret))
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	body := readCallbackFile(t, "testdata/smart_invite.json")

	signedCallback("before reload", metricsNewSecret, body).send(t, tester.Client, base+"/cronofy/callback")
	before := scrapeMetrics(t, base+"/metrics")

	// The rotation's last step: the old secret goes, so the new one
	// becomes index 0. Caddy builds a new metrics registry for the new
	// configuration.
	tester = loadCaddyfile(t, metricsConfig(ports[0], ports[1], upstream, metricsNewSecret))
	afterReload := scrapeMetrics(t, base+"/metrics")
	for key, value := range before.requests {
		if afterReload.requests[key] != value {
			t.Errorf("requests_total{%s}: %v after the reload, want %v as before it", key, afterReload.requests[key], value)
		}
	}

	resp, reply := signedCallback("after reload", metricsNewSecret, body).send(t, tester.Client, base+"/cronofy/callback")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after reload: got status %d (%q), want 200", resp.StatusCode, reply)
	}
	resp, reply = signedCallback("old secret after reload", metricsOldSecret, body).send(t, tester.Client, base+"/cronofy/callback")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old secret after reload: got status %d (%q), want 401", resp.StatusCode, reply)
	}
	after := scrapeMetrics(t, base+"/metrics")

	checkGrowth(t, "caddy_cronofy_callback_requests_total", afterReload.requests, after.requests,
		map[string]float64{"accepted/smart_invite": 1, "signature_mismatch/none": 1})
	checkGrowth(t, "caddy_cronofy_callback_secret_matches_total", afterReload.matches, after.matches,
		map[string]float64{"0": 1})

	// Caddy's admin endpoint serves the same registry as the metrics
	// handler.
	admin := scrapeMetrics(t, "http://localhost:2999/metrics")
	for key, value := range after.requests {
		if admin.requests[key] != value {
			t.Errorf("admin endpoint: requests_total{%s} = %v, want %v as on the metrics route", key, admin.requests[key], value)
		}
	}
}

func TestMetricsRegisterTwice(t *testing.T) {
	registry := prometheus.NewPedanticRegistry()
	first, err := registerMetrics(registry)
	if err != nil {
		t.Fatalf("first registration: %v", err)
	}
	second, err := registerMetrics(registry)
	if err != nil {
		t.Fatalf("second registration in the same registry: %v", err)
	}
	if first.requests != second.requests {
		t.Error("second registration made a new requests collector, want the registered one reused")
	}
}

func TestMetricsWithoutRegistry(t *testing.T) {
	h := &Handler{Secrets: []string{"no-registry-secret"}}
	// A bare Context has no metrics registry. Provision must still
	// succeed, and recording must not need one.
	if err := h.Provision(caddy.Context{Context: context.Background()}); err != nil {
		t.Fatalf("Provision without a metrics registry: %v", err)
	}
	if h.metrics != nil {
		t.Error("metrics set without a registry")
	}
	h.metrics.observeRequest(outcomeAccepted, notificationTypeNone, 0)
}

func TestNotificationTypeLabel(t *testing.T) {
	h := &Handler{typeSchemas: map[string]*compiledKind{"widget_created": nil}}
	tests := map[string]string{
		"":                               "none",
		"smart_invite":                   "smart_invite",
		"change":                         "change",
		"scheduling_request_time_chosen": "scheduling_request",
		"scheduling_request_anything":    "scheduling_request",
		"widget_created":                 "widget_created",
		"real_time_scheduling":           "other",
		"made_up":                        "other",
	}
	for notificationType, want := range tests {
		if got := h.notificationTypeLabel(notificationType); got != want {
			t.Errorf("notificationTypeLabel(%q) = %q, want %q", notificationType, got, want)
		}
	}
}

func TestMetricsCountTokenAndReplay(t *testing.T) {
	ports := freePorts(t, 2)
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])

	// The upstream holds the first request until released, so that an
	// identical second request arrives while the first is in flight.
	arrived := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(arrived)
			<-release
		}
		io.WriteString(w, "upstream reached")
	}))
	t.Cleanup(upstream.Close)

	tester := loadCaddyfile(t, globalOptions(ports[0], ports[1])+fmt.Sprintf(`
:%d {
	handle /metrics {
		metrics
	}
	handle /cronofy/* {
		cronofy_callback {
			secret %s
			url_token metrics-url-token
			replay_window 1h
		}
		reverse_proxy %s
	}
}
`, ports[0], metricsOldSecret, upstream.Listener.Addr()))
	// A body of its own, so that no earlier run has delivered it.
	body := []byte(fmt.Sprintf(`{"notification":{"type":"verification"},"channel":{"channel_id":"chn_%d","callback_url":"https://example.test/cronofy","filters":{}}}`, time.Now().UnixNano()))
	request := signedCallback("signed", metricsOldSecret, body)
	callbackURL := base + "/cronofy/metrics-url-token"

	before := scrapeMetrics(t, base+"/metrics")

	resp, reply := request.send(t, tester.Client, base+"/cronofy/wrong-token")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong URL token: got status %d (%q), want 401", resp.StatusCode, reply)
	}

	firstStatus := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, callbackURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(SignatureHeader, request.signature)
		resp, err := tester.Client.Do(req)
		if err != nil {
			firstStatus <- 0
			return
		}
		resp.Body.Close()
		firstStatus <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the first delivery did not reach the upstream within 10 seconds")
	}

	resp, reply = request.send(t, tester.Client, callbackURL)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("identical body in flight: got status %d (%q), want 409", resp.StatusCode, reply)
	}
	close(release)
	if status := <-firstStatus; status != http.StatusOK {
		t.Errorf("first delivery: got status %d, want 200", status)
	}

	resp, reply = request.send(t, tester.Client, callbackURL)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("delivered body again: got status %d (%q), want 200", resp.StatusCode, reply)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("upstream received %d requests, want 1", got)
	}

	after := scrapeMetrics(t, base+"/metrics")
	checkGrowth(t, "caddy_cronofy_callback_requests_total", before.requests, after.requests, map[string]float64{
		"invalid_url_token/none":        1,
		"accepted/verification":         1,
		"replay_in_flight/verification": 1,
		"replayed/verification":         1,
	})
	checkGrowth(t, "caddy_cronofy_callback_secret_matches_total", before.matches, after.matches, map[string]float64{"0": 3})
}
