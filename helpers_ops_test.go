package cronofy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// Helpers of the operations tests (metrics, CLI, HTTPS, examples). They
// load configurations into the Caddy that caddytest runs in the test
// process, whose admin endpoint is always localhost:2999, so these tests
// never run in parallel.

// globalOptions returns the global options block of every test
// configuration: the admin endpoint where caddytest expects it, HTTP and
// HTTPS ports off 80 and 443, listeners on loopback only, and no writes
// to the system trust store or to the saved configuration. extra holds
// more global options, one per line.
func globalOptions(httpPort, httpsPort int, extra ...string) string {
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port %d
	https_port %d
	default_bind 127.0.0.1
	skip_install_trust
	persist_config off
	grace_period 1s
	%s
}
`, httpPort, httpsPort, strings.Join(extra, "\n\t"))
}

// loadCaddyfile loads config into the test Caddy, replacing whatever
// configuration it had, and stops the test if it does not load.
func loadCaddyfile(t *testing.T, config string) *caddytest.Tester {
	t.Helper()

	tester := caddytest.NewTester(t)
	tester.InitServer(config, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// callbackRequest is a request to send to the guard.
type callbackRequest struct {
	name        string
	method      string      // "" means POST
	contentType string      // "" means application/json; charset=utf-8
	signature   string      // "" sends no Cronofy-HMAC-SHA256 header
	body        []byte      // nil sends no body
	header      http.Header // more request headers
	// unknownLength hides the body length from Go's client, which then
	// sends it chunked over HTTP/1.1 or without content-length over
	// HTTP/2.
	unknownLength bool
}

// signedCallback returns a POST of body signed with secret.
func signedCallback(name, secret string, body []byte) callbackRequest {
	return callbackRequest{name: name, body: body, signature: sign([]byte(secret), body)}
}

// send sends c to url with client and returns the response with its body.
func (c callbackRequest) send(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()

	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
		if c.unknownLength {
			body = struct{ io.Reader }{body}
		}
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("%s: building request: %v", c.name, err)
	}
	for name, values := range c.header {
		req.Header[name] = values
	}
	contentType := c.contentType
	if contentType == "" {
		contentType = "application/json; charset=utf-8"
	}
	req.Header.Set("Content-Type", contentType)
	if c.signature != "" {
		req.Header.Set(SignatureHeader, c.signature)
	}

	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: sending to %s: %v", c.name, url, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the response: %v", c.name, err)
	}
	return resp, string(reply)
}
