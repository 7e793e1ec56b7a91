package cronofy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The tests in this file break the upstream behind the guard and check
// what Cronofy would see and what reaches the backend. Cronofy counts only
// a 2xx response as delivered and retries everything else, so a failure
// must never look like a success, and with replay_window a failed
// delivery must not be remembered.

// failingUpstream is a recordingUpstream whose first requests fail: fail
// handles each of the first failures requests instead of record. The
// requests that fail are counted in arrivals but not recorded.
type failingUpstream struct {
	recordingUpstream

	failures int64
	fail     func(w http.ResponseWriter, r *http.Request)
	arrivals atomic.Int64
}

func newFailingUpstream(t *testing.T, failures int64, fail func(http.ResponseWriter, *http.Request)) *failingUpstream {
	u := &failingUpstream{failures: failures, fail: fail}
	u.server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.server.Close)
	return u
}

func (u *failingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if u.arrivals.Add(1) <= u.failures {
		u.fail(w, r)
		return
	}
	u.record(w, r)
}

// hijack takes over the upstream's connection to r so that a test can
// break the HTTP exchange.
func hijack(w http.ResponseWriter) net.Conn {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(fmt.Sprintf("hijacking the upstream connection: %v", err))
	}
	return conn
}

// unusedAddr returns a loopback address on which nothing listens, so that
// dialing it is refused.
func unusedAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePorts(t, 1)[0]))
}

// replayOptions configures the guard with replay defence, under which a
// failed delivery must stay retryable.
var replayOptions = []string{"secret " + firstSecret, "replay_window 1h"}

func TestUpstreamRefused(t *testing.T) {
	addr := unusedAddr(t)
	server := startCaddy(t, fmt.Sprintf(`	cronofy_callback {
		secret %s
		replay_window 1h
	}
	reverse_proxy %s`, firstSecret, addr))
	c := signed(firstSecret, []byte(smartInviteBody))

	resp, reply := server.send(t, c)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("%v with the upstream down: got %d %q, want 502", c, resp.StatusCode, reply)
	}

	// Cronofy retries after the 502. Once the upstream is back, the retry
	// is forwarded, because a failed delivery is not remembered.
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("starting the upstream on %s: %v", addr, err)
	}
	upstream := &recordingUpstream{}
	upstream.server = httptest.NewUnstartedServer(http.HandlerFunc(upstream.record))
	upstream.server.Listener.Close()
	upstream.server.Listener = listener
	upstream.server.Start()
	t.Cleanup(upstream.server.Close)

	resp, reply = server.send(t, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%v retried with the upstream up: got %d %q, want 200", c, resp.StatusCode, reply)
	}
	if got := upstream.only(t); !bytes.Equal(got.Body, c.body) {
		t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, c.body)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	// The first request stalls the upstream until reverse_proxy gives up
	// and closes the connection, or for 10 seconds at most.
	upstream := newFailingUpstream(t, 1, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	server := startCaddy(t, fmt.Sprintf(`	cronofy_callback {
		secret %s
		replay_window 1h
	}
	reverse_proxy %s {
		transport http {
			response_header_timeout 300ms
		}
	}`, firstSecret, upstream.addr()))
	c := signed(firstSecret, []byte(smartInviteBody))

	start := time.Now()
	resp, reply := server.send(t, c)
	t.Logf("slow upstream: %d after %v", resp.StatusCode, time.Since(start))
	if resp.StatusCode != http.StatusGatewayTimeout && resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("%v with a slow upstream: got %d %q, want 504 or 502", c, resp.StatusCode, reply)
	}

	resp, reply = server.send(t, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%v retried: got %d %q, want 200", c, resp.StatusCode, reply)
	}
	if n := upstream.arrivals.Load(); n != 2 {
		t.Errorf("upstream received %d requests, want 2: the timed-out one and the retry", n)
	}
	if got := upstream.only(t); !bytes.Equal(got.Body, c.body) {
		t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, c.body)
	}
}

func TestUpstreamClosesConnection(t *testing.T) {
	tests := []struct {
		name string
		fail func(http.ResponseWriter, *http.Request)
		// status is the status the client receives. A 200 means that
		// the upstream's status line arrived and the body was cut short.
		status int
	}{
		{
			name: "before the response",
			fail: func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				hijack(w).Close()
			},
			status: http.StatusBadGateway,
		},
		{
			name: "inside the response body",
			fail: func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				conn := hijack(w)
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\npartial")
				conn.Close()
			},
			status: http.StatusOK,
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upstream := newFailingUpstream(t, 1, tc.fail)
			server := startCaddy(t, guardSite(&upstream.recordingUpstream, replayOptions...))
			c := signed(firstSecret, []byte(smartInviteBody))

			resp, reply, err := sendAllowingCut(t, server, c)
			t.Logf("upstream closed %s: %d %q, body error %v", tc.name, resp.StatusCode, reply, err)
			if resp.StatusCode != tc.status {
				t.Fatalf("%v: got %d, want %d", c, resp.StatusCode, tc.status)
			}
			if resp.StatusCode == http.StatusOK && err == nil {
				t.Fatalf("%v: got a complete 200 response %q, want it cut short", c, reply)
			}

			// Cronofy retries a response it could not read to the end,
			// and the retry must reach the upstream.
			resp, reply = server.send(t, c)
			if resp.StatusCode != http.StatusOK || reply != upstreamReply {
				t.Fatalf("%v retried: got %d %q, want 200 %q", c, resp.StatusCode, reply, upstreamReply)
			}
			if n := upstream.arrivals.Load(); n != 2 {
				t.Errorf("upstream received %d requests, want 2", n)
			}
			if got := upstream.only(t); !bytes.Equal(got.Body, c.body) {
				t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, c.body)
			}
		})
	}
}

// sendAllowingCut is send for a response whose body may end early: it
// returns the error of reading the body instead of failing the test.
func sendAllowingCut(t *testing.T, server *caddyServer, c callback) (*http.Response, string, error) {
	t.Helper()

	req, err := http.NewRequest(http.MethodPost, server.url(callbackPath), bytes.NewReader(c.body))
	if err != nil {
		t.Fatalf("building request %v: %v", c, err)
	}
	req.Header.Set("Content-Type", c.contentTypeOrDefault())
	req.Header.Set(SignatureHeader, c.signature)
	resp, err := server.tester.Client.Do(req)
	if err != nil {
		t.Fatalf("sending %v: %v", c, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	return resp, string(reply), err
}

func TestUpstreamRetryNextUpstream(t *testing.T) {
	upstream := newRecordingUpstream(t)
	body := readTestdata(t, "smart_invite.json")

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%t", chunked), func(t *testing.T) {
			// lb_policy first always tries the refusing upstream first,
			// and max_fails 1 marks it down after one failure so that
			// the retry picks the second one. Caddy keeps that mark
			// across configurations, so each case refuses on a new
			// address.
			server := startCaddy(t, fmt.Sprintf(`	cronofy_callback {
		secret %s
	}
	reverse_proxy %s %s {
		lb_policy first
		lb_retries 1
		fail_duration 10s
		max_fails 1
	}`, firstSecret, unusedAddr(t), upstream.addr()))

			before := len(upstream.received())
			c := signed(firstSecret, body)
			c.chunked = chunked
			resp, reply := server.send(t, c)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%v: got %d %q, want 200", c, resp.StatusCode, reply)
			}

			requests := upstream.received()[before:]
			if len(requests) != 1 {
				t.Fatalf("second upstream received %d requests, want 1", len(requests))
			}
			got := requests[0]
			if !bytes.Equal(got.Body, body) {
				t.Errorf("second upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, body)
			}
			if got.ContentLength != int64(len(body)) {
				t.Errorf("second upstream ContentLength: got %d, want %d", got.ContentLength, len(body))
			}
			if cl := got.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
				t.Errorf("second upstream Content-Length header: got %q, want %q", cl, strconv.Itoa(len(body)))
			}
		})
	}
}

// TestUpstreamRetryAfterBodyRead retries a POST whose body the first
// upstream read before it dropped the connection. Caddy replays a body on
// such a retry only with request_buffers. Without them the retry fails
// with 502, which Cronofy retries. The second upstream may see the head
// of the retry, but never a complete body: its body ends before its
// Content-Length, which every HTTP server reports as an error.
func TestUpstreamRetryAfterBodyRead(t *testing.T) {
	body := readTestdata(t, "smart_invite.json")
	tests := []struct {
		name    string
		options string
		status  int
	}{
		{name: "without request_buffers", status: http.StatusBadGateway},
		{name: "with request_buffers", options: "request_buffers 256KiB", status: http.StatusOK},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := newFailingUpstream(t, 1, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				hijack(w).Close()
			})
			second := newRecordingUpstream(t)
			server := startCaddy(t, fmt.Sprintf(`	cronofy_callback {
		secret %s
	}
	reverse_proxy %s %s {
		lb_policy first
		lb_retries 1
		lb_retry_match {
			method POST
		}
		fail_duration 10s
		max_fails 1
		%s
	}`, firstSecret, first.addr(), second.addr(), tc.options))

			c := signed(firstSecret, body)
			resp, reply := server.send(t, c)
			if resp.StatusCode != tc.status {
				t.Fatalf("%v: got %d %q, want %d", c, resp.StatusCode, reply, tc.status)
			}
			if n := first.arrivals.Load(); n != 1 {
				t.Errorf("first upstream received %d requests, want 1", n)
			}

			requests := second.received()
			if tc.status != http.StatusOK {
				for _, got := range requests {
					if int64(len(got.Body)) == got.ContentLength {
						t.Errorf("second upstream received a complete body of %d bytes, want none", len(got.Body))
					}
				}
				t.Logf("second upstream received %d incomplete requests", len(requests))
				return
			}
			if len(requests) != 1 {
				t.Fatalf("second upstream received %d requests, want 1", len(requests))
			}
			if !bytes.Equal(requests[0].Body, body) {
				t.Errorf("second upstream body differs from the signed body:\ngot  %q\nwant %q", requests[0].Body, body)
			}
			if requests[0].ContentLength != int64(len(body)) {
				t.Errorf("second upstream ContentLength: got %d, want %d", requests[0].ContentLength, len(body))
			}
		})
	}
}
