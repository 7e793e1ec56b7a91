package cronofy

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The tests in this file run the handler inside a real Caddy, which
// caddytest starts in the test process, in front of an upstream that
// records what reaches it. caddytest always puts Caddy's admin endpoint
// on localhost:2999, and each test replaces the whole configuration, so
// none of these tests calls t.Parallel.

// Client secrets of the tests, used as raw bytes like real ones.
const (
	firstSecret  = "CRN_e2eFirstSecret0aB1cD2eF3gH4iJ5kL6mN7"
	secondSecret = "CRN_e2eSecondSecret0aB1cD2eF3gH4iJ5kL6mN"
)

// callbackPath is the request path of every callback the tests send. The
// guard protects the whole site, so any path would do.
const callbackPath = "/cronofy/callback"

// upstreamReply is the response body of the recording upstream.
const upstreamReply = "upstream ok"

// bodyMarker appears in request bodies whose rejection reason must not
// quote body content.
const bodyMarker = "marker7f3a"

// smartInviteBody is a compact Smart Invite callback, the form Cronofy
// sends, for tests that do not need the published example.
const smartInviteBody = `{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si_e2e_1","callback_url":"https://example.test/cronofy","recipient":{"email":"recipient@example.test","status":"accepted"},"reply":{"email":"reply@example.test","status":"accepted"}}}`

// signatureFor returns the signature header element Cronofy sends for
// body: standard Base64 of HMAC-SHA256 keyed with the client secret as
// raw bytes. It is written out here instead of calling the package's own
// signing helper, so that a mistake shared by both cannot pass unnoticed.
func signatureFor(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago. Another process may take one before Caddy binds it, in
// which case the configuration fails to load and the test fails loudly.
func freePorts(t *testing.T, n int) []int {
	t.Helper()

	listeners := make([]net.Listener, n)
	ports := make([]int, n)
	for i := range listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserving a loopback port: %v", err)
		}
		listeners[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	// Closing only after every port is read keeps the ports distinct.
	for _, ln := range listeners {
		if err := ln.Close(); err != nil {
			t.Fatalf("releasing a loopback port: %v", err)
		}
	}
	return ports
}

// upstreamRequest is what the recording upstream saw of one request.
type upstreamRequest struct {
	Method           string
	Body             []byte
	ContentLength    int64
	TransferEncoding []string
	Header           http.Header
}

// recordingUpstream is the backend behind reverse_proxy. It records every
// request and responds with 200.
type recordingUpstream struct {
	server *httptest.Server

	mu       sync.Mutex
	requests []upstreamRequest
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.server = httptest.NewServer(http.HandlerFunc(u.record))
	t.Cleanup(u.server.Close)
	return u
}

func (u *recordingUpstream) record(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)

	u.mu.Lock()
	u.requests = append(u.requests, upstreamRequest{
		Method:           r.Method,
		Body:             body,
		ContentLength:    r.ContentLength,
		TransferEncoding: r.TransferEncoding,
		Header:           r.Header.Clone(),
	})
	u.mu.Unlock()

	if err != nil {
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, upstreamReply)
}

// addr returns the host:port that reverse_proxy dials.
func (u *recordingUpstream) addr() string {
	return u.server.Listener.Addr().String()
}

// received returns a copy of the requests recorded so far.
func (u *recordingUpstream) received() []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamRequest(nil), u.requests...)
}

// only returns the single request the upstream received, or fails the
// test if it received none or several.
func (u *recordingUpstream) only(t *testing.T) upstreamRequest {
	t.Helper()
	requests := u.received()
	if len(requests) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(requests))
	}
	return requests[0]
}

// caddyServer is the HTTP site of a loaded Caddy configuration.
type caddyServer struct {
	tester *caddytest.Tester
	port   int
}

// addr returns the host:port of the site's listener.
func (s *caddyServer) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// url returns the URL of path on the site.
func (s *caddyServer) url(path string) string {
	return "http://" + s.addr() + path
}

// caddyfileFor returns a Caddyfile with one plain HTTP site on httpPort
// whose body is site. The global options keep the admin endpoint where
// caddytest expects it, keep the HTTPS port off 443, bind every listener
// to loopback, and stop Caddy from installing its CA into the system
// trust store or saving the configuration to disk. moreOptions holds
// further global option lines.
func caddyfileFor(httpPort, httpsPort int, moreOptions, site string) string {
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

:%d {
%s
}
`, httpPort, httpsPort, moreOptions, httpPort, site)
}

// startCaddy loads a Caddyfile with one site whose body is site and
// stops the test if it does not load.
func startCaddy(t *testing.T, site string) *caddyServer {
	t.Helper()
	return startCaddyWithOptions(t, "", site)
}

// startCaddyWithOptions is startCaddy with more global option lines.
func startCaddyWithOptions(t *testing.T, moreOptions, site string) *caddyServer {
	t.Helper()

	ports := freePorts(t, 2)
	tester := caddytest.NewTester(t)
	tester.InitServer(caddyfileFor(ports[0], ports[1], moreOptions, site), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return &caddyServer{tester: tester, port: ports[0]}
}

// guardSite returns a site body with the guard, configured by the
// subdirective lines in options, in front of reverse_proxy to upstream.
func guardSite(upstream *recordingUpstream, options ...string) string {
	return fmt.Sprintf(`	cronofy_callback {
		%s
	}
	reverse_proxy %s`, strings.Join(options, "\n\t\t"), upstream.addr())
}

// callback is a request to send to the guard.
type callback struct {
	path        string // "" means callbackPath
	method      string // "" means POST
	contentType string // "" means application/json; charset=utf-8
	signature   string // the Cronofy-HMAC-SHA256 value; "" sends no header
	body        []byte
	// chunked hides the body length from Go's client, which then sends
	// the body with chunked transfer encoding and no Content-Length.
	chunked bool
	// header holds more request headers. They are sent with their names
	// exactly as written, so that non-canonical names such as
	// X_Cronofy_Foo reach the server unchanged.
	header map[string]string
}

// signed returns a POST of body signed with secret.
func signed(secret string, body []byte) callback {
	return callback{body: body, signature: signatureFor(secret, body)}
}

// String describes the request for failure messages.
func (c callback) String() string {
	body := string(c.body)
	if len(body) > 300 {
		body = body[:300] + fmt.Sprintf("... (%d bytes)", len(c.body))
	}
	return fmt.Sprintf("%s %s Content-Type=%q Cronofy-HMAC-SHA256=%q chunked=%t headers=%v body=%q",
		c.methodOrDefault(), c.pathOrDefault(), c.contentTypeOrDefault(), c.signature, c.chunked, c.header, body)
}

func (c callback) pathOrDefault() string {
	if c.path == "" {
		return callbackPath
	}
	return c.path
}

func (c callback) methodOrDefault() string {
	if c.method == "" {
		return http.MethodPost
	}
	return c.method
}

func (c callback) contentTypeOrDefault() string {
	if c.contentType == "" {
		return "application/json; charset=utf-8"
	}
	return c.contentType
}

// send sends c to the site and returns the response with its body read.
func (s *caddyServer) send(t *testing.T, c callback) (*http.Response, string) {
	t.Helper()

	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
		if c.chunked {
			// A bare io.Reader has no length that Go's client can see.
			body = struct{ io.Reader }{body}
		}
	}
	req, err := http.NewRequest(c.methodOrDefault(), s.url(c.pathOrDefault()), body)
	if err != nil {
		t.Fatalf("building request %v: %v", c, err)
	}
	req.Header.Set("Content-Type", c.contentTypeOrDefault())
	if c.signature != "" {
		req.Header.Set(SignatureHeader, c.signature)
	}
	for name, value := range c.header {
		req.Header[name] = []string{value}
	}

	resp, err := s.tester.Client.Do(req)
	if err != nil {
		t.Fatalf("sending %v: %v", c, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response to %v: %v", c, err)
	}
	return resp, string(reply)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("reading test data: %v", err)
	}
	return data
}

func TestCaddySmartInvite(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret))

	body := readTestdata(t, "smart_invite.json")
	c := signed(firstSecret, body)
	resp, reply := server.send(t, c)
	if resp.StatusCode != http.StatusOK || reply != upstreamReply {
		t.Fatalf("%v: got %d %q, want 200 %q", c, resp.StatusCode, reply, upstreamReply)
	}

	got := upstream.only(t)
	if got.Method != http.MethodPost {
		t.Errorf("upstream method: got %s, want POST", got.Method)
	}
	if !bytes.Equal(got.Body, body) {
		t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, body)
	}
	if got.ContentLength != int64(len(body)) {
		t.Errorf("upstream ContentLength: got %d, want %d", got.ContentLength, len(body))
	}
	if cl := got.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("upstream Content-Length header: got %q, want %q", cl, strconv.Itoa(len(body)))
	}
	if sig := got.Header.Values(SignatureHeader); len(sig) != 1 || sig[0] != c.signature {
		t.Errorf("upstream %s: got %q, want [%q]", SignatureHeader, sig, c.signature)
	}

	want := map[string]string{
		"X-Cronofy-Notification-Type": "smart_invite",
		"X-Cronofy-Smart-Invite-Id":   "example_id",
		"X-Cronofy-Recipient-Email":   "example@example.com",
		"X-Cronofy-Recipient-Status":  "tentative",
		"X-Cronofy-Reply-Email":       "example@example.com",
		"X-Cronofy-Reply-Status":      "tentative",
	}
	for name, value := range want {
		if values := got.Header.Values(name); len(values) != 1 || values[0] != value {
			t.Errorf("upstream %s: got %q, want [%q]", name, values, value)
		}
	}
}

func TestCaddySpoofedHeaders(t *testing.T) {
	upstream := newRecordingUpstream(t)
	site := guardSite(upstream, "secret "+firstSecret)

	// Caddy v2.11 drops every header whose name contains "_" or "." before
	// any handler runs, unless the server allowlists it. The guard must
	// still strip such spellings of X-Cronofy- names, because CGI-style
	// backends such as PHP read them as the same variable. The allowlist
	// lets them reach the guard, and the X_Control and X.Control headers
	// show that they do.
	servers := []struct {
		name    string
		options string
		control map[string]string
	}{
		{name: "default server"},
		{
			name: "underscore and dot names allowed",
			options: `	servers {
		expected_underscore_headers X_Cronofy_* x-cronofy_* X_Control_Underscore
		expected_dot_headers X.Cronofy.* x-cronofy.* X.Control.Dot
	}`,
			control: map[string]string{
				"X_Control_Underscore": "kept",
				"X.Control.Dot":        "kept",
			},
		},
	}

	spoofed := map[string]string{
		"X-Cronofy-Smart-Invite-Id":   "spoofed",
		"X-Cronofy-Notification-Type": "spoofed",
		"X-Cronofy-Foo":               "spoofed",
		"x-cronofy-recipient-email":   "spoofed",
		"X_Cronofy_Foo":               "spoofed",
		"X_CRONOFY_SMART_INVITE_ID":   "spoofed",
		"x-cronofy_reply_status":      "spoofed",
		"X.Cronofy.Smart-Invite-Id":   "spoofed",
		"x-cronofy.reply.email":       "spoofed",
	}
	bodies := []struct {
		name string
		body string
		// want holds the guard headers the upstream must receive. Every
		// other header whose name starts with X-Cronofy- in any case and
		// with "_" or "." for "-" must be gone.
		want map[string]string
	}{
		{
			name: "smart invite",
			body: smartInviteBody,
			want: map[string]string{
				"X-Cronofy-Notification-Type": "smart_invite",
				"X-Cronofy-Smart-Invite-Id":   "si_e2e_1",
				"X-Cronofy-Recipient-Email":   "recipient@example.test",
				"X-Cronofy-Recipient-Status":  "accepted",
				"X-Cronofy-Reply-Email":       "reply@example.test",
				"X-Cronofy-Reply-Status":      "accepted",
			},
		},
		{
			// The guard sets only the notification type for a type it
			// has no schema for, so spoofed Smart Invite headers must not
			// survive merely because nothing overwrites them.
			name: "unknown type",
			body: `{"notification":{"type":"calendar_sync_paused"},"channel":{"channel_id":"chn_e2e","callback_url":"https://example.test/cronofy","filters":{}}}`,
			want: map[string]string{
				"X-Cronofy-Notification-Type": "calendar_sync_paused",
			},
		},
	}
	ownedName := strings.NewReplacer("_", "-", ".", "-")

	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			server := startCaddyWithOptions(t, srv.options, site)

			for _, tc := range bodies {
				t.Run(tc.name, func(t *testing.T) {
					before := len(upstream.received())
					c := signed(firstSecret, []byte(tc.body))
					c.header = make(map[string]string)
					for name, value := range spoofed {
						c.header[name] = value
					}
					for name, value := range srv.control {
						c.header[name] = value
					}
					resp, _ := server.send(t, c)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("%v: got status %d, want 200", c, resp.StatusCode)
					}

					requests := upstream.received()
					if len(requests) != before+1 {
						t.Fatalf("%v: upstream received %d requests, want 1", c, len(requests)-before)
					}
					got := requests[before]
					for name, values := range got.Header {
						if !strings.HasPrefix(strings.ToLower(ownedName.Replace(name)), "x-cronofy-") {
							continue
						}
						want, owned := tc.want[name]
						if !owned {
							t.Errorf("%v: upstream received %s: %q, want the header removed", c, name, values)
							continue
						}
						if len(values) != 1 || values[0] != want {
							t.Errorf("%v: upstream %s: got %q, want [%q]", c, name, values, want)
						}
					}
					for name, want := range tc.want {
						if got.Header.Get(name) == "" {
							t.Errorf("%v: upstream did not receive %s, want %q", c, name, want)
						}
					}
					for name, want := range srv.control {
						if values := got.Header[http.CanonicalHeaderKey(name)]; len(values) != 1 || values[0] != want {
							t.Errorf("%v: upstream %s: got %q, want [%q]; the server no longer lets such names through", c, name, values, want)
						}
					}
				})
			}
		})
	}
}

func TestCaddyBodyBytes(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret))

	tests := []struct {
		name string
		body string
		want map[string]string
	}{
		{
			name: "non-ASCII email",
			body: `{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si_e2e_2","callback_url":"https://example.test/cronofy","recipient":{"email":"zoë@example.test","status":"accepted"},"reply":{"email":"zoë@example.test","status":"declined"}}}`,
			want: map[string]string{
				"X-Cronofy-Recipient-Email": "zo%C3%AB@example.test",
				"X-Cronofy-Reply-Email":     "zo%C3%AB@example.test",
				"X-Cronofy-Reply-Status":    "declined",
			},
		},
		{
			// The header carries the decoded value while the body keeps
			// the escape, because a re-serialized body would no longer
			// match its signature.
			name: "escaped non-ASCII email",
			body: `{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si_e2e_3","callback_url":"https://example.test/cronofy","recipient":{"email":"zo\u00eb@example.test","status":"accepted"}}}`,
			want: map[string]string{
				"X-Cronofy-Recipient-Email": "zo%C3%AB@example.test",
			},
		},
		{
			name: "large integers and escapes",
			body: `{"notification":{"type":"smart_invite"},"sequence":123456789012345678901234567890,"ratio":1.50E+2,"smart_invite":{"smart_invite_id":"si_\u00e9_4","callback_url":"https:\/\/example.test\/cronofy","recipient":{"email":"a@example.test","status":"tentative","comment":"caf\u00e9 \"ok\" \/ \ud83d\ude00"}}}`,
			want: map[string]string{
				"X-Cronofy-Smart-Invite-Id": "si_%C3%A9_4",
			},
		},
		{
			name: "percent sign",
			body: `{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si%2F5","callback_url":"https://example.test/cronofy","recipient":{"email":"100%@example.test","status":"pending"}}}`,
			want: map[string]string{
				"X-Cronofy-Smart-Invite-Id": "si%252F5",
				"X-Cronofy-Recipient-Email": "100%25@example.test",
			},
		},
		{
			name: "whitespace and final newline",
			body: "{ \"notification\" : { \"type\" : \"smart_invite\" } ,\r\n\t\"smart_invite\" : { \"smart_invite_id\" : \"si_e2e_6\", \"callback_url\" : \"\", \"recipient\" : { \"email\" : \"b@example.test\", \"status\" : \"accepted\" } } }\n",
			want: map[string]string{
				"X-Cronofy-Smart-Invite-Id": "si_e2e_6",
			},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(upstream.received())
			c := signed(firstSecret, []byte(tc.body))
			resp, reply := server.send(t, c)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%v: got %d %q, want 200", c, resp.StatusCode, reply)
			}

			requests := upstream.received()
			if len(requests) != before+1 {
				t.Fatalf("%v: upstream received %d requests, want 1", c, len(requests)-before)
			}
			got := requests[before]
			if !bytes.Equal(got.Body, c.body) {
				t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, c.body)
			}
			if got.ContentLength != int64(len(c.body)) {
				t.Errorf("%v: upstream ContentLength: got %d, want %d", c, got.ContentLength, len(c.body))
			}
			for name, want := range tc.want {
				if values := got.Header.Values(name); len(values) != 1 || values[0] != want {
					t.Errorf("%v: upstream %s: got %q, want [%q]", c, name, values, want)
				}
			}
		})
	}
}

func TestCaddyChunkedBody(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret))

	body := readTestdata(t, "smart_invite.json")
	c := signed(firstSecret, body)
	c.chunked = true
	resp, reply := server.send(t, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%v: got %d %q, want 200", c, resp.StatusCode, reply)
	}

	got := upstream.only(t)
	if !bytes.Equal(got.Body, body) {
		t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, body)
	}
	if got.ContentLength != int64(len(body)) {
		t.Errorf("upstream ContentLength: got %d, want %d", got.ContentLength, len(body))
	}
	if cl := got.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("upstream Content-Length header: got %q, want %q", cl, strconv.Itoa(len(body)))
	}
	if len(got.TransferEncoding) != 0 {
		t.Errorf("upstream TransferEncoding: got %q, want none", got.TransferEncoding)
	}
}

// rejectedCallback is a request the guard must reject with status, with
// reason as the start of {http.error.message}.
type rejectedCallback struct {
	name   string
	send   callback
	status int
	reason string
}

// rejectedCallbacks returns requests that a guard with the secret
// firstSecret and max_body_size 1KiB rejects.
func rejectedCallbacks(t *testing.T) []rejectedCallback {
	valid := []byte(smartInviteBody)
	oversized := []byte(`{"notification":{"type":"smart_invite"},"padding":"` + strings.Repeat("x", 2048) + `"}`)

	tampered := signed(firstSecret, valid)
	tampered.body = bytes.Replace(valid, []byte("accepted"), []byte("declined"), 1)

	textPlain := signed(firstSecret, valid)
	textPlain.contentType = "text/plain; charset=utf-8"

	gzipped := signed(firstSecret, valid)
	gzipped.header = map[string]string{"Content-Encoding": "gzip"}

	oversizedChunked := signed(firstSecret, oversized)
	oversizedChunked.chunked = true

	get := signed(firstSecret, nil)
	get.method = http.MethodGet

	return []rejectedCallback{
		{
			name:   "GET",
			send:   get,
			status: http.StatusMethodNotAllowed,
			reason: "method GET not allowed",
		},
		{
			name:   "unsigned",
			send:   callback{body: valid},
			status: http.StatusUnauthorized,
			reason: "missing Cronofy-HMAC-SHA256 header",
		},
		{
			name:   "malformed signature",
			send:   callback{body: valid, signature: hex.EncodeToString([]byte("not a digest"))},
			status: http.StatusUnauthorized,
			reason: "Cronofy-HMAC-SHA256 header contains no well-formed digest",
		},
		{
			name:   "other secret",
			send:   signed(secondSecret, valid),
			status: http.StatusUnauthorized,
			reason: "no digest matches any configured client secret",
		},
		{
			name:   "body changed after signing",
			send:   tampered,
			status: http.StatusUnauthorized,
			reason: "no digest matches any configured client secret",
		},
		{
			name:   "text/plain",
			send:   textPlain,
			status: http.StatusUnsupportedMediaType,
			reason: "unsupported media type, expected application/json",
		},
		{
			name:   "gzip encoded",
			send:   gzipped,
			status: http.StatusUnsupportedMediaType,
			reason: `unsupported Content-Encoding "gzip"`,
		},
		{
			name:   "Content-Length over max_body_size",
			send:   signed(firstSecret, oversized),
			status: http.StatusRequestEntityTooLarge,
			reason: "request body exceeds max_body_size",
		},
		{
			name:   "chunked over max_body_size",
			send:   oversizedChunked,
			status: http.StatusRequestEntityTooLarge,
			reason: "request body exceeds max_body_size",
		},
		{
			// The published Smart Invite example has a trailing comma.
			name:   "invalid JSON",
			send:   signed(firstSecret, readTestdata(t, "smart_invite_published.json")),
			status: http.StatusBadRequest,
			reason: "invalid JSON at byte offset",
		},
		{
			name:   "duplicate key",
			send:   signed(firstSecret, []byte(`{"notification":{"type":"smart_invite","type":"`+bodyMarker+`"}}`)),
			status: http.StatusBadRequest,
			reason: "duplicate object key at byte offset",
		},
		{
			name:   "schema failure",
			send:   signed(firstSecret, []byte(strings.Replace(smartInviteBody, `"status":"accepted"`, `"status":"`+bodyMarker+`"`, 1))),
			status: http.StatusUnprocessableEntity,
			reason: "smart_invite schema: /smart_invite/recipient/status",
		},
		{
			name:   "missing notification type",
			send:   signed(firstSecret, []byte(`{"notification":{"kind":"`+bodyMarker+`"}}`)),
			status: http.StatusUnprocessableEntity,
			reason: "missing notification.type",
		},
	}
}

func TestCaddyRejections(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret, "max_body_size 1KiB"))

	for _, tc := range rejectedCallbacks(t) {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := server.send(t, tc.send)
			if resp.StatusCode != tc.status {
				t.Errorf("%v: got status %d, want %d", tc.send, resp.StatusCode, tc.status)
			}
			if n := len(upstream.received()); n != 0 {
				t.Errorf("%v: upstream received %d requests, want none", tc.send, n)
			}
			if tc.status == http.StatusMethodNotAllowed {
				if allow := resp.Header.Get("Allow"); allow != http.MethodPost {
					t.Errorf("%v: Allow header: got %q, want %q", tc.send, allow, http.MethodPost)
				}
			}
		})
	}
}

func TestCaddyErrorReason(t *testing.T) {
	upstream := newRecordingUpstream(t)
	site := guardSite(upstream, "secret "+firstSecret, "max_body_size 1KiB") + `
	handle_errors {
		respond "{http.error.status_code} {http.error.message}"
	}`
	server := startCaddy(t, site)

	for _, tc := range rejectedCallbacks(t) {
		t.Run(tc.name, func(t *testing.T) {
			resp, reply := server.send(t, tc.send)
			if resp.StatusCode != tc.status {
				t.Errorf("%v: got status %d, want %d", tc.send, resp.StatusCode, tc.status)
			}
			want := strconv.Itoa(tc.status) + " " + tc.reason
			if !strings.HasPrefix(reply, want) {
				t.Errorf("%v: got response %q, want it to start with %q", tc.send, reply, want)
			}

			expected := hmac.New(sha256.New, []byte(firstSecret))
			expected.Write(tc.send.body)
			sum := expected.Sum(nil)
			leaks := map[string]string{
				"the client secret":                firstSecret,
				"the other client secret":          secondSecret,
				"the expected digest":              base64.StdEncoding.EncodeToString(sum),
				"the expected digest in hex":       hex.EncodeToString(sum),
				"the expected digest in base64url": base64.RawURLEncoding.EncodeToString(sum),
				"body content":                     bodyMarker,
			}
			if tc.send.signature != "" {
				leaks["the received digest"] = tc.send.signature
			}
			for leak, value := range leaks {
				if strings.Contains(reply, value) {
					t.Errorf("%v: response %q contains %s", tc.send, reply, leak)
				}
			}
		})
	}
}

// sendHead opens a connection to the site and writes the head of a POST
// with Expect: 100-continue, but no body. It returns the connection and a
// reader for the responses.
func (s *caddyServer) sendHead(t *testing.T, contentLength int, headers ...string) (net.Conn, *bufio.Reader) {
	t.Helper()

	conn, err := net.DialTimeout("tcp", s.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing Caddy: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatalf("setting the connection deadline: %v", err)
	}

	head := "POST " + callbackPath + " HTTP/1.1\r\n" +
		"Host: " + s.addr() + "\r\n" +
		"Content-Length: " + strconv.Itoa(contentLength) + "\r\n" +
		"Expect: 100-continue\r\n"
	for _, header := range headers {
		head += header + "\r\n"
	}
	head += "\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("writing the request head %q: %v", head, err)
	}
	return conn, bufio.NewReader(conn)
}

// TestCaddyExpectContinue speaks HTTP/1.1 over a raw connection so that
// it controls when, and whether, the body is sent.
func TestCaddyExpectContinue(t *testing.T) {
	upstream := newRecordingUpstream(t)
	body := []byte(smartInviteBody)
	jsonType := "Content-Type: application/json; charset=utf-8"
	signature := SignatureHeader + ": " + signatureFor(firstSecret, body)

	sites := []struct {
		name string
		site string
	}{
		{name: "default error response", site: guardSite(upstream, "secret "+firstSecret)},
		{name: "handle_errors", site: guardSite(upstream, "secret "+firstSecret) + `
	handle_errors {
		respond "{http.error.status_code} {http.error.message}"
	}`},
	}
	rejected := []struct {
		name          string
		contentLength int
		headers       []string
		status        int
	}{
		{name: "unsigned", contentLength: len(body), headers: []string{jsonType}, status: http.StatusUnauthorized},
		{name: "text/plain", contentLength: len(body), headers: []string{"Content-Type: text/plain", signature}, status: http.StatusUnsupportedMediaType},
		{name: "declared too large", contentLength: DefaultMaxBodySize + 1, headers: []string{jsonType, signature}, status: http.StatusRequestEntityTooLarge},
	}

	for _, site := range sites {
		t.Run(site.name, func(t *testing.T) {
			server := startCaddy(t, site.site)

			for _, tc := range rejected {
				t.Run(tc.name, func(t *testing.T) {
					_, reader := server.sendHead(t, tc.contentLength, tc.headers...)

					// The body is never written: the final status has to
					// arrive while the client still waits for 100 Continue.
					resp, err := http.ReadResponse(reader, nil)
					if err != nil {
						t.Fatalf("headers %q, Content-Length %d: reading the response before sending the body: %v", tc.headers, tc.contentLength, err)
					}
					resp.Body.Close()
					if resp.StatusCode != tc.status {
						t.Errorf("headers %q, Content-Length %d: got status %d before the body was sent, want %d", tc.headers, tc.contentLength, resp.StatusCode, tc.status)
					}
					if n := len(upstream.received()); n != 0 {
						t.Errorf("headers %q: upstream received %d requests, want none", tc.headers, n)
					}
				})
			}
		})
	}

	// The signed request shows that the raw exchange works: the guard
	// reads the body, so Caddy requests it with 100 Continue.
	t.Run("signed", func(t *testing.T) {
		server := startCaddy(t, sites[0].site)
		conn, reader := server.sendHead(t, len(body), jsonType, signature)

		interim, err := http.ReadResponse(reader, nil)
		if err != nil {
			t.Fatalf("reading the interim response: %v", err)
		}
		if interim.StatusCode != http.StatusContinue {
			t.Fatalf("got status %d before the body was sent, want 100", interim.StatusCode)
		}

		if _, err := conn.Write(body); err != nil {
			t.Fatalf("writing the body: %v", err)
		}
		resp, err := http.ReadResponse(reader, nil)
		if err != nil {
			t.Fatalf("reading the final response: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("got status %d, want 200", resp.StatusCode)
		}
		if got := upstream.only(t); !bytes.Equal(got.Body, body) {
			t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, body)
		}
	})
}

// TestCaddyUnsignedUploadNotRead sends the head of an unsigned 1 MiB
// POST without Expect: 100-continue and no body. The 401 has to arrive
// anyway: net/http would otherwise read part of the body before it sends
// the response.
func TestCaddyUnsignedUploadNotRead(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret))

	conn, err := net.DialTimeout("tcp", server.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing Caddy: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatalf("setting the connection deadline: %v", err)
	}
	head := "POST " + callbackPath + " HTTP/1.1\r\n" +
		"Host: " + server.addr() + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: 1048576\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("writing the request head: %v", err)
	}

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response before sending the body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got status %d before the body was sent, want 401", resp.StatusCode)
	}
	if !resp.Close {
		t.Errorf("got a response that keeps the connection open, want Connection: close")
	}
	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
}

// TestCaddyUnsignedKeepsConnection sends two unsigned requests with small
// bodies on one connection: a body within max_body_size is drained, so
// the connection serves the second request too.
func TestCaddyUnsignedKeepsConnection(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret))

	conn, err := net.DialTimeout("tcp", server.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing Caddy: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatalf("setting the connection deadline: %v", err)
	}
	request := "POST " + callbackPath + " HTTP/1.1\r\n" +
		"Host: " + server.addr() + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(smartInviteBody)) + "\r\n\r\n" +
		smartInviteBody
	reader := bufio.NewReader(conn)

	for i := range 2 {
		if _, err := io.WriteString(conn, request); err != nil {
			t.Fatalf("request %d: writing: %v", i, err)
		}
		resp, err := http.ReadResponse(reader, nil)
		if err != nil {
			t.Fatalf("request %d: reading the response: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("request %d: got status %d, want 401", i, resp.StatusCode)
		}
		if resp.Close {
			t.Errorf("request %d: got Connection: close, want the connection kept", i)
		}
	}
	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
}

func TestCaddyPlaceholders(t *testing.T) {
	upstream := newRecordingUpstream(t)
	site := fmt.Sprintf(`	cronofy_callback {
		secret %s
		secret %s
	}
	reverse_proxy %s {
		header_up X-Secret-Index {http.cronofy_callback.secret_index}
		header_up X-Notification-Type {http.cronofy_callback.notification_type}
		header_up X-Smart-Invite-Id {http.cronofy_callback.smart_invite_id}
		header_up X-Callback-Url {http.cronofy_callback.callback_url}
		header_up X-Recipient-Email {http.cronofy_callback.recipient.email}
		header_up X-Recipient-Comment {http.cronofy_callback.recipient.comment}
		header_up X-Reply-Status {http.cronofy_callback.reply.status}
		header_up X-Proposal-Start {http.cronofy_callback.recipient.proposal.start.time}
		header_up X-Proposal-Start-Tzid {http.cronofy_callback.recipient.proposal.start.tzid}
		header_up X-Proposal-End {http.cronofy_callback.reply.proposal.end.time}
		header_up X-Recipients-Count {http.cronofy_callback.recipients.count}
		header_up X-Second-Recipient-Email {http.cronofy_callback.recipients.1.email}
		header_up X-Second-Recipient-Status {http.cronofy_callback.recipients.1.status}
	}`, firstSecret, secondSecret, upstream.addr())
	server := startCaddy(t, site)

	example := readTestdata(t, "smart_invite.json")
	exampleValues := map[string]string{
		"X-Notification-Type":   "smart_invite",
		"X-Smart-Invite-Id":     "example_id",
		"X-Callback-Url":        "http://www.example.com",
		"X-Recipient-Email":     "example@example.com",
		"X-Recipient-Comment":   "example comment",
		"X-Reply-Status":        "tentative",
		"X-Proposal-Start":      "2026-04-21T23:00:00+02:00",
		"X-Proposal-Start-Tzid": "Europe/Paris",
		"X-Proposal-End":        "2026-04-21T23:00:00+02:00",
	}
	withIndex := func(index string, values map[string]string) map[string]string {
		out := map[string]string{"X-Secret-Index": index}
		for name, value := range values {
			out[name] = value
		}
		return out
	}
	recipients := []byte(`{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si_e2e_7","callback_url":"https://example.test/cronofy","recipients":[{"email":"first@example.test","status":"accepted"},{"email":"second@example.test","status":"declined"}]}}`)

	tests := []struct {
		name      string
		body      []byte
		signature string
		want      map[string]string
	}{
		{
			name:      "first secret",
			body:      example,
			signature: signatureFor(firstSecret, example),
			want:      withIndex("0", exampleValues),
		},
		{
			name:      "second secret",
			body:      example,
			signature: signatureFor(secondSecret, example),
			want:      withIndex("1", exampleValues),
		},
		{
			name:      "rotation list",
			body:      example,
			signature: "wrong," + signatureFor(secondSecret, example),
			want:      withIndex("1", exampleValues),
		},
		{
			// Every digest is checked, and the index is that of the first
			// configured secret that matches, whatever the header order.
			name:      "both digests",
			body:      example,
			signature: signatureFor(secondSecret, example) + "," + signatureFor(firstSecret, example),
			want:      withIndex("0", exampleValues),
		},
		{
			name:      "recipients array",
			body:      recipients,
			signature: signatureFor(secondSecret, recipients),
			want: map[string]string{
				"X-Secret-Index":            "1",
				"X-Smart-Invite-Id":         "si_e2e_7",
				"X-Recipients-Count":        "2",
				"X-Second-Recipient-Email":  "second@example.test",
				"X-Second-Recipient-Status": "declined",
			},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(upstream.received())
			c := callback{body: tc.body, signature: tc.signature}
			resp, reply := server.send(t, c)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%v: got %d %q, want 200", c, resp.StatusCode, reply)
			}

			requests := upstream.received()
			if len(requests) != before+1 {
				t.Fatalf("%v: upstream received %d requests, want 1", c, len(requests)-before)
			}
			got := requests[before]
			for name, want := range tc.want {
				if value := got.Header.Get(name); value != want {
					t.Errorf("%v: upstream %s: got %q, want %q", c, name, value, want)
				}
			}
		})
	}
}

// The published test vector: Cronofy's documentation gives this digest
// for the exact 24-byte body below under this client secret.
const (
	publishedSecret = "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID"
	publishedBody   = `{"example":"well-known"}`
	publishedDigest = "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0="
)

func TestCaddyJSONConfig(t *testing.T) {
	upstream := newRecordingUpstream(t)
	ports := freePorts(t, 2)
	config := fmt.Sprintf(`{
	"admin": {"listen": "localhost:2999", "config": {"persist": false}},
	"apps": {
		"http": {
			"http_port": %d,
			"https_port": %d,
			"grace_period": 1000000000,
			"servers": {
				"srv0": {
					"listen": ["127.0.0.1:%d"],
					"automatic_https": {"disable": true},
					"routes": [{
						"handle": [
							{
								"handler": "cronofy_callback",
								"secrets": [%q, %q],
								"max_body_size": 4096,
								"unknown_types": "reject",
								"max_depth": 4,
								"max_digests": 2,
								"log_emails": true
							},
							{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
						]
					}]
				}
			}
		}
	}
}`, ports[0], ports[1], ports[0], firstSecret, publishedSecret, upstream.addr())
	tester := caddytest.NewTester(t)
	tester.InitServer(config, "json")
	if t.Failed() {
		t.FailNow()
	}
	server := &caddyServer{tester: tester, port: ports[0]}

	valid := []byte(smartInviteBody)
	deep := []byte(`{"notification":{"type":"smart_invite"},"a":{"b":{"c":{"d":{}}}}}`)
	large := []byte(`{"notification":{"type":"smart_invite"},"padding":"` + strings.Repeat("x", 4096) + `"}`)
	tests := []struct {
		name       string
		send       callback
		status     int
		toUpstream bool
	}{
		{
			name:       "signed smart invite",
			send:       signed(firstSecret, valid),
			status:     http.StatusOK,
			toUpstream: true,
		},
		{
			// The vector has no notification type, so a match shows as
			// 422 from the schema step instead of 401.
			name:   "published test vector",
			send:   callback{body: []byte(publishedBody), signature: publishedDigest},
			status: http.StatusUnprocessableEntity,
		},
		{
			name:   "unknown type rejected",
			send:   signed(firstSecret, []byte(`{"notification":{"type":"calendar_sync_paused"}}`)),
			status: http.StatusUnprocessableEntity,
		},
		{
			name:   "deeper than max_depth",
			send:   signed(firstSecret, deep),
			status: http.StatusBadRequest,
		},
		{
			name:   "more than max_digests",
			send:   callback{body: valid, signature: strings.Repeat(signatureFor(secondSecret, valid)+",", 2) + signatureFor(firstSecret, valid)},
			status: http.StatusUnauthorized,
		},
		{
			name:   "over max_body_size",
			send:   signed(firstSecret, large),
			status: http.StatusRequestEntityTooLarge,
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(upstream.received())
			resp, reply := server.send(t, tc.send)
			if resp.StatusCode != tc.status {
				t.Errorf("%v: got %d %q, want status %d", tc.send, resp.StatusCode, reply, tc.status)
			}

			requests := upstream.received()[before:]
			switch {
			case tc.toUpstream && len(requests) != 1:
				t.Errorf("%v: upstream received %d requests, want 1", tc.send, len(requests))
			case tc.toUpstream && !bytes.Equal(requests[0].Body, tc.send.body):
				t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", requests[0].Body, tc.send.body)
			case !tc.toUpstream && len(requests) != 0:
				t.Errorf("%v: upstream received %d requests, want none", tc.send, len(requests))
			}
		})
	}
}

func TestCaddyEnvSecret(t *testing.T) {
	const variable = "CRONOFY_E2E_CLIENT_SECRET"
	t.Setenv(variable, secondSecret)
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret {env."+variable+"}"))

	body := []byte(smartInviteBody)
	tests := []struct {
		name   string
		secret string
		status int
	}{
		{name: "value of the variable", secret: secondSecret, status: http.StatusOK},
		{name: "placeholder text", secret: "{env." + variable + "}", status: http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := signed(tc.secret, body)
			resp, reply := server.send(t, c)
			if resp.StatusCode != tc.status {
				t.Errorf("%v signed with %q: got %d %q, want status %d", c, tc.secret, resp.StatusCode, reply, tc.status)
			}
		})
	}
}

func TestCaddyUnsetEnvSecret(t *testing.T) {
	const variable = "CRONOFY_E2E_UNSET_SECRET"
	// t.Setenv restores the variable's original state after the test.
	t.Setenv(variable, "")
	os.Unsetenv(variable)

	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret))

	ports := freePorts(t, 2)
	placeholder := "{env." + variable + "}"
	message := loadError(t, caddyfileFor(ports[0], ports[1], "", guardSite(upstream, "secret "+placeholder)))
	for _, want := range []string{"secrets[0]", placeholder, "unset"} {
		if !strings.Contains(message, want) {
			t.Errorf("load error %q does not mention %q", message, want)
		}
	}

	// Caddy keeps the running configuration when a new one fails.
	c := signed(firstSecret, []byte(smartInviteBody))
	if resp, reply := server.send(t, c); resp.StatusCode != http.StatusOK {
		t.Errorf("%v after the failed load: got %d %q, want 200", c, resp.StatusCode, reply)
	}
}

// loadError posts a Caddyfile to the admin API, expecting Caddy to reject
// it, and returns Caddy's error message.
func loadError(t *testing.T, config string) string {
	t.Helper()

	req, err := http.NewRequest(http.MethodPost, "http://localhost:2999/load", strings.NewReader(config))
	if err != nil {
		t.Fatalf("building the load request: %v", err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("posting the config to the admin API: %v", err)
	}
	defer resp.Body.Close()
	message, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the admin API response: %v", err)
	}
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("config loaded, want an error:\n%s", config)
	}
	return string(message)
}

// exampleUpstream is one of the example upstreams in examples/ running as
// a child process.
type exampleUpstream struct {
	script string
	port   int
	lines  <-chan string // stdout lines after the first
}

// startExampleUpstream runs script with the interpreter on a port the
// script picks, and kills it when the test ends. The test is skipped when
// the interpreter is not installed.
func startExampleUpstream(t *testing.T, interpreter, script string) *exampleUpstream {
	t.Helper()

	path, err := exec.LookPath(interpreter)
	if err != nil {
		t.Skipf("%s is not on PATH, so the example upstream %s cannot run", interpreter, script)
	}

	cmd := exec.Command(path, script, "0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("connecting to the stdout of %s: %v", script, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", script, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", script, stderr.String())
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

	upstream := &exampleUpstream{script: script, lines: lines}
	first := upstream.nextLine(t)
	portText, found := strings.CutPrefix(first, "listening on ")
	upstream.port, err = strconv.Atoi(portText)
	if !found || err != nil {
		t.Fatalf("first line of %s: got %q, want \"listening on PORT\"", script, first)
	}
	return upstream
}

// nextLine returns the next stdout line of the upstream, failing the test
// if none arrives within 10 seconds.
func (u *exampleUpstream) nextLine(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-u.lines:
		if !ok {
			t.Fatalf("%s closed its stdout", u.script)
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatalf("%s printed nothing for 10 seconds", u.script)
	}
	return ""
}

func TestCaddyPythonUpstream(t *testing.T) {
	python := startExampleUpstream(t, "python3", "examples/python/upstream.py")
	site := fmt.Sprintf(`	cronofy_callback {
		secret %s
	}
	reverse_proxy 127.0.0.1:%d`, firstSecret, python.port)
	server := startCaddy(t, site)

	body := []byte(`{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si_e2e_8","callback_url":"https://example.test/cronofy","recipient":{"email":"zoë@example.test","status":"accepted"},"reply":{"email":"zo\u00eb@example.test","status":"tentative"}}}`)
	c := signed(firstSecret, body)
	c.header = map[string]string{"X-Cronofy-Spoofed": "spoofed"}
	resp, reply := server.send(t, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%v: got %d %q, want 200", c, resp.StatusCode, reply)
	}

	want := upstreamReport{
		Path:       callbackPath,
		BodyLength: len(body),
		Headers: map[string]string{
			"X-Cronofy-Notification-Type": "smart_invite",
			"X-Cronofy-Smart-Invite-Id":   "si_e2e_8",
			"X-Cronofy-Recipient-Email":   "zoë@example.test",
			"X-Cronofy-Recipient-Status":  "accepted",
			"X-Cronofy-Reply-Email":       "zoë@example.test",
			"X-Cronofy-Reply-Status":      "tentative",
		},
	}
	outputs := map[string]string{
		"response":     reply,
		"printed line": python.nextLine(t),
	}
	for source, text := range outputs {
		got, ok := checkUpstreamReport(t, "upstream.py "+source, text, want)
		if !ok {
			continue
		}
		if value, found := got.Headers["X-Cronofy-Spoofed"]; found {
			t.Errorf("%s: upstream.py received the client's X-Cronofy-Spoofed: %q", source, value)
		}
	}
}

// checkUpstreamReport compares a JSON report of an example upstream with
// want, reporting each difference as a test error. It returns the decoded
// report and whether text was JSON at all.
func checkUpstreamReport(t *testing.T, source, text string, want upstreamReport) (upstreamReport, bool) {
	t.Helper()

	var got upstreamReport
	if err := json.Unmarshal([]byte(text), &got); err != nil {
		t.Errorf("%s is not JSON: %v\n%s", source, err, text)
		return got, false
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
	return got, true
}
