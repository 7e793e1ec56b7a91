package cronofy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// exampleSecret is the demo client secret of Caddyfile.example.
const exampleSecret = "demo-client-secret"

// exampleCaddyfile returns Caddyfile.example with the guard's site on
// guardPort, the demo upstream on upstreamPort, everything bound to
// 127.0.0.1, and the global options the tests need added.
func exampleCaddyfile(t *testing.T, guardPort, upstreamPort, httpsPort int) string {
	t.Helper()

	data, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	example := string(data)

	replacements := []struct{ old, new string }{
		{"\n{\n", fmt.Sprintf("\n{\n\tadmin localhost:2999\n\thttp_port %d\n\thttps_port %d\n\tdefault_bind 127.0.0.1\n\tskip_install_trust\n\tpersist_config off\n\tgrace_period 1s\n", guardPort, httpsPort)},
		{":8080 {", fmt.Sprintf(":%d {", guardPort)},
		{"reverse_proxy localhost:8081", fmt.Sprintf("reverse_proxy 127.0.0.1:%d", upstreamPort)},
		{":8081 {", fmt.Sprintf(":%d {", upstreamPort)},
		{"bind localhost", "bind 127.0.0.1"},
	}
	for _, r := range replacements {
		if strings.Count(example, r.old) != 1 {
			t.Fatalf("Caddyfile.example: want %q exactly once to rewrite it for the test", r.old)
		}
		example = strings.Replace(example, r.old, r.new, 1)
	}
	return example
}

// loadExample loads Caddyfile.example and returns the URL of its guarded
// path.
func loadExample(t *testing.T) string {
	t.Helper()

	// The example reads the secret from this variable when it is set.
	t.Setenv("CRONOFY_CLIENT_SECRET", "")
	os.Unsetenv("CRONOFY_CLIENT_SECRET")

	ports := freePorts(t, 3)
	loadCaddyfile(t, exampleCaddyfile(t, ports[0], ports[1], ports[2]))
	return fmt.Sprintf("http://127.0.0.1:%d/cronofy/smart-invite", ports[0])
}

// problemDetails is an RFC 9457 problem document with the member the
// example adds.
type problemDetails struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Status  int    `json:"status"`
	Detail  string `json:"detail"`
	Outcome string `json:"outcome"`
}

func TestExampleProblemDetails(t *testing.T) {
	url := loadExample(t)
	client := &http.Client{Timeout: 10 * time.Second}
	body := readCallbackFile(t, "testdata/smart_invite.json")

	accepted := signedCallback("demo secret", exampleSecret, body)
	resp, reply := accepted.send(t, client, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: got status %d (%q), want 200", accepted.name, resp.StatusCode, reply)
	}
	if !strings.Contains(reply, "X-Cronofy-Smart-Invite-Id: example_id") {
		t.Errorf("%s: the demo upstream's reply lacks the Smart Invite id header:\n%s", accepted.name, reply)
	}

	// A Content-Encoding value that is quoted in the reason, with quotes
	// and template delimiters, must come back as data in valid JSON.
	hostileEncoding := `{{printf "injected"}}"`
	encoded := signedCallback("hostile Content-Encoding", exampleSecret, body)
	encoded.header = http.Header{"Content-Encoding": {hostileEncoding}}

	tests := []struct {
		request callbackRequest
		want    problemDetails
	}{
		{
			callbackRequest{name: "unsigned", body: body},
			problemDetails{"about:blank", "Unauthorized", 401, "missing Cronofy-HMAC-SHA256 header", "missing_signature"},
		},
		{
			signedCallback("wrong secret", "not-the-demo-secret", body),
			problemDetails{"about:blank", "Unauthorized", 401, "no digest matches any configured client secret", "signature_mismatch"},
		},
		{
			encoded,
			problemDetails{"about:blank", "Unsupported Media Type", 415, fmt.Sprintf("unsupported Content-Encoding %q", hostileEncoding), "unsupported_content_encoding"},
		},
		{
			signedCallback("bad status", exampleSecret, []byte(strings.Replace(string(body), `"tentative"`, `"maybe"`, 1))),
			problemDetails{"about:blank", "Unprocessable Entity", 422, `smart_invite schema: /smart_invite/recipient/status: fails "enum"`, "schema_violation"},
		},
	}
	for _, tt := range tests {
		resp, reply := tt.request.send(t, client, url)
		if resp.StatusCode != tt.want.Status {
			t.Errorf("%s: got status %d, want %d", tt.request.name, resp.StatusCode, tt.want.Status)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
			t.Errorf("%s: got Content-Type %q, want application/problem+json", tt.request.name, got)
		}
		var got problemDetails
		if err := json.Unmarshal([]byte(reply), &got); err != nil {
			t.Errorf("%s: response is not JSON: %v\n%s", tt.request.name, err, reply)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got problem %+v, want %+v", tt.request.name, got, tt.want)
		}
	}

	resp, reply = callbackRequest{name: "GET elsewhere", method: http.MethodGet}.send(t, client, strings.Replace(url, "/cronofy/smart-invite", "/elsewhere", 1))
	if resp.StatusCode != http.StatusNotFound || reply != "" {
		t.Errorf("GET outside the guard: got %d %q, want 404 with an empty body", resp.StatusCode, reply)
	}
}

// upstreamReport is the JSON object the example upstreams respond with
// and print.
type upstreamReport struct {
	Path       string            `json:"path"`
	BodyLength int               `json:"body_length"`
	Headers    map[string]string `json:"headers"`
}

// nodeExampleCaddyfile returns examples/node/Caddyfile with the guard on
// guardPort in front of the upstream on upstreamPort, and the global
// options the tests need.
func nodeExampleCaddyfile(t *testing.T, guardPort, httpsPort, upstreamPort int) string {
	t.Helper()

	data, err := os.ReadFile("examples/node/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	example := string(data)
	for old, replacement := range map[string]string{
		":8080 {":                      fmt.Sprintf(":%d {", guardPort),
		"reverse_proxy 127.0.0.1:8081": fmt.Sprintf("reverse_proxy 127.0.0.1:%d", upstreamPort),
	} {
		if strings.Count(example, old) != 1 {
			t.Fatalf("examples/node/Caddyfile: want %q exactly once to rewrite it for the test", old)
		}
		example = strings.Replace(example, old, replacement, 1)
	}
	return globalOptions(guardPort, httpsPort) + example
}

func TestExampleNodeUpstream(t *testing.T) {
	node := startExampleUpstream(t, "node", "examples/node/upstream.js")
	ports := freePorts(t, 2)
	// The example reads the secret from this variable when it is set.
	t.Setenv("CRONOFY_CLIENT_SECRET", "")
	os.Unsetenv("CRONOFY_CLIENT_SECRET")
	loadCaddyfile(t, nodeExampleCaddyfile(t, ports[0], ports[1], node.port))
	const secret = exampleSecret

	body := []byte(`{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si_node_1","callback_url":"https://example.test/cronofy","recipient":{"email":"zoë@example.test","status":"accepted"},"reply":{"email":"zo\u00eb+100%@example.test","status":"tentative"}}}`)
	request := signedCallback("signed smart invite", secret, body)
	request.header = http.Header{"X-Cronofy-Spoofed": {"spoofed"}}
	resp, reply := request.send(t, &http.Client{Timeout: 10 * time.Second}, fmt.Sprintf("http://127.0.0.1:%d/cronofy/node", ports[0]))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: got status %d (%q), want 200", request.name, resp.StatusCode, reply)
	}

	want := upstreamReport{
		Path:       "/cronofy/node",
		BodyLength: len(body),
		Headers: map[string]string{
			"X-Cronofy-Notification-Type": "smart_invite",
			"X-Cronofy-Smart-Invite-Id":   "si_node_1",
			"X-Cronofy-Recipient-Email":   "zoë@example.test",
			"X-Cronofy-Recipient-Status":  "accepted",
			"X-Cronofy-Reply-Email":       "zoë+100%@example.test",
			"X-Cronofy-Reply-Status":      "tentative",
		},
	}
	outputs := map[string]string{
		"response":     reply,
		"printed line": node.nextLine(t),
	}
	for source, text := range outputs {
		checkUpstreamReport(t, "upstream.js "+source, text, want)
	}
}
