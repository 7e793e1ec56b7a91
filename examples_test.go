package cronofy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
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

	ports := reserveLoopbackPorts(t, 3)
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

// nodeUpstream is examples/node/upstream.js running as a child process.
type nodeUpstream struct {
	port  int
	lines <-chan string // stdout lines after the first
}

// startNodeUpstream runs the example upstream on a port it picks and
// kills it when the test ends.
func startNodeUpstream(t *testing.T) *nodeUpstream {
	t.Helper()

	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH, so the Node.js example upstream cannot run")
	}

	cmd := exec.Command(node, "examples/node/upstream.js", "0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("connecting to the stdout of upstream.js: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting upstream.js: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("stderr of upstream.js:\n%s", stderr.String())
		}
	})

	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
	}()

	first := nextNodeLine(t, lines)
	portText, found := strings.CutPrefix(first, "listening on ")
	port, err := strconv.Atoi(portText)
	if !found || err != nil {
		t.Fatalf("first line of upstream.js: got %q, want \"listening on PORT\"", first)
	}
	return &nodeUpstream{port: port, lines: lines}
}

// nextNodeLine returns the next stdout line of upstream.js, failing the
// test if none arrives within 10 seconds.
func nextNodeLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("upstream.js closed its stdout")
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatal("upstream.js printed nothing for 10 seconds")
	}
	return ""
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
	node := startNodeUpstream(t)
	ports := reserveLoopbackPorts(t, 2)
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
		"printed line": nextNodeLine(t, node.lines),
	}
	for source, text := range outputs {
		var got upstreamReport
		if err := json.Unmarshal([]byte(text), &got); err != nil {
			t.Errorf("%s of upstream.js is not JSON: %v\n%s", source, err, text)
			continue
		}
		if got.Path != want.Path {
			t.Errorf("%s: path: got %q, want %q", source, got.Path, want.Path)
		}
		if got.BodyLength != want.BodyLength {
			t.Errorf("%s: body_length: got %d, want %d", source, got.BodyLength, want.BodyLength)
		}
		for name, value := range want.Headers {
			if got.Headers[name] != value {
				t.Errorf("%s: %s: got %q, want %q", source, name, got.Headers[name], value)
			}
		}
		if len(got.Headers) != len(want.Headers) {
			t.Errorf("%s: got headers %q, want exactly %q", source, got.Headers, want.Headers)
		}
	}
}
