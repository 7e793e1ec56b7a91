package cronofy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The tests in this file play clients that misbehave on purpose against
// the guard running in a real Caddy: slow or abandoned uploads, bodies one
// byte over the limit in every framing, oversized signature headers,
// HTTP/2 and pipelined HTTP/1.1. Raw connections are used wherever
// net/http's client would hide the misbehaviour.

// dialSite opens a TCP connection to the site whose reads and writes fail
// after timeout, so that a server that never responds fails the test
// instead of hanging it.
func (s *caddyServer) dialSite(t *testing.T, timeout time.Duration) (net.Conn, *bufio.Reader) {
	t.Helper()

	conn, err := net.DialTimeout("tcp", s.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing Caddy: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatalf("setting the connection deadline: %v", err)
	}
	return conn, bufio.NewReader(conn)
}

// postHead returns the head of an HTTP/1.1 POST of a JSON body to the
// callback path, framed with Content-Length, or with chunked transfer
// encoding when contentLength is negative. headers holds more header
// lines.
func (s *caddyServer) postHead(contentLength int, headers ...string) string {
	var head strings.Builder
	head.WriteString("POST " + callbackPath + " HTTP/1.1\r\n")
	head.WriteString("Host: " + s.addr() + "\r\n")
	head.WriteString("Content-Type: application/json; charset=utf-8\r\n")
	if contentLength < 0 {
		head.WriteString("Transfer-Encoding: chunked\r\n")
	} else {
		head.WriteString("Content-Length: " + strconv.Itoa(contentLength) + "\r\n")
	}
	for _, header := range headers {
		head.WriteString(header + "\r\n")
	}
	head.WriteString("\r\n")
	return head.String()
}

// signatureLine returns the signature header line for body under secret.
func signatureLine(secret string, body []byte) string {
	return SignatureHeader + ": " + signatureFor(secret, body)
}

// chunk returns data as one chunk of chunked transfer encoding.
func chunk(data []byte) string {
	return fmt.Sprintf("%x\r\n%s\r\n", len(data), data)
}

// readResponse reads one response and its body from reader.
func readResponse(t *testing.T, reader *bufio.Reader) (*http.Response, string) {
	t.Helper()

	resp, err := http.ReadResponse(reader, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of a %d response: %v", resp.StatusCode, err)
	}
	return resp, string(body)
}

// waitClosed waits for the server to close conn and returns how long that
// took. Any bytes that arrive first fail the test: the caller has read
// every response it expects.
func waitClosed(t *testing.T, conn net.Conn, reader *bufio.Reader, within time.Duration) time.Duration {
	t.Helper()

	start := time.Now()
	if err := conn.SetReadDeadline(start.Add(within)); err != nil {
		t.Fatalf("setting the read deadline: %v", err)
	}
	extra, err := io.ReadAll(reader)
	elapsed := time.Since(start)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		t.Fatalf("connection still open %v after the last response, want it closed by the server", within)
	}
	// A reset instead of an orderly close also frees the connection.
	if len(extra) > 0 {
		t.Errorf("got %q after the expected responses, want the connection closed", extra)
	}
	return elapsed
}

// accessLog is the JSON access log of a site, written to a file that the
// tests read to know when Caddy has finished with a request whose client
// is gone.
type accessLog struct {
	path string
}

func newAccessLog(t *testing.T) *accessLog {
	return &accessLog{path: filepath.Join(t.TempDir(), "access.log")}
}

// directive returns the site lines that write the log.
func (l *accessLog) directive() string {
	return fmt.Sprintf(`
	log {
		output file %s
		format json
	}`, l.path)
}

// accessEntry holds the fields of an access log entry that the tests read.
type accessEntry struct {
	Status  int `json:"status"`
	Request struct {
		URI string `json:"uri"`
	} `json:"request"`
}

// wait returns the first n entries of the log, polling for up to 10
// seconds for Caddy to write them.
func (l *accessLog) wait(t *testing.T, n int) []accessEntry {
	t.Helper()

	deadline := time.Now().Add(10 * time.Second)
	for {
		entries := l.read(t)
		if len(entries) >= n {
			return entries[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d entries after 10s, want %d", len(entries), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *accessLog) read(t *testing.T) []accessEntry {
	t.Helper()

	data, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading the access log: %v", err)
	}
	var entries []accessEntry
	for line := range bytes.Lines(data) {
		// The last line may still be being written.
		if !bytes.HasSuffix(line, []byte("\n")) {
			break
		}
		var entry accessEntry
		if err := json.Unmarshal(line, &entry); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		entries = append(entries, entry)
	}
	return entries
}

// trickle writes data to conn one byte every interval until it is all
// written, a write fails or stop is closed, and closes the returned
// channel when it stops.
func trickle(conn net.Conn, data []byte, interval time.Duration, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for i := range data {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			if _, err := conn.Write(data[i : i+1]); err != nil {
				return
			}
		}
	}()
	return done
}

// Short server timeouts of the kind Caddyfile.example recommends, so that
// slow clients are cut off within seconds.
const (
	testReadHeaderTimeout = time.Second
	testReadBodyTimeout   = 2 * time.Second
	testReadIdleTimeout   = 500 * time.Millisecond
)

func TestHostileSlowBody(t *testing.T) {
	upstream := newRecordingUpstream(t)
	options := fmt.Sprintf(`	servers {
		timeouts {
			read_header %s
			read_body %s
			read_body_idle %s
		}
	}`, testReadHeaderTimeout, testReadBodyTimeout, testReadIdleTimeout)
	server := startCaddyWithOptions(t, options, guardSite(upstream, "secret "+firstSecret))

	body := []byte(smartInviteBody)
	half := len(body) / 2

	t.Run("stalled body", func(t *testing.T) {
		conn, reader := server.dialSite(t, 10*time.Second)
		head := server.postHead(len(body), signatureLine(firstSecret, body))
		if _, err := io.WriteString(conn, head+string(body[:half])); err != nil {
			t.Fatalf("writing the head and half the body: %v", err)
		}
		start := time.Now()

		resp, reply := readResponse(t, reader)
		elapsed := time.Since(start)
		t.Logf("stalled after %d of %d bytes: %d %q after %v", half, len(body), resp.StatusCode, reply, elapsed)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("got status %d, want 400", resp.StatusCode)
		}
		if elapsed > testReadIdleTimeout+2*time.Second {
			t.Errorf("answered after %v, want about read_body_idle %v", elapsed, testReadIdleTimeout)
		}
		closed := waitClosed(t, conn, reader, 5*time.Second)
		t.Logf("connection closed %v after the response", closed)
		if n := len(upstream.received()); n != 0 {
			t.Errorf("upstream received %d requests, want none", n)
		}
	})

	t.Run("trickled body", func(t *testing.T) {
		// One byte every 100ms never stalls for read_body_idle, so only
		// the read_body deadline of the whole request stops it. The
		// complete body would take over 20 seconds.
		conn, reader := server.dialSite(t, 10*time.Second)
		head := server.postHead(len(body), signatureLine(firstSecret, body))
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatalf("writing the head: %v", err)
		}
		start := time.Now()
		stop := make(chan struct{})
		done := trickle(conn, body, 100*time.Millisecond, stop)
		defer func() {
			close(stop)
			<-done
		}()

		resp, reply := readResponse(t, reader)
		elapsed := time.Since(start)
		t.Logf("trickled body: %d %q after %v", resp.StatusCode, reply, elapsed)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("got status %d, want 400", resp.StatusCode)
		}
		if elapsed > testReadBodyTimeout+2*time.Second {
			t.Errorf("answered after %v, want about read_body %v", elapsed, testReadBodyTimeout)
		}
		closed := waitClosed(t, conn, reader, 5*time.Second)
		t.Logf("connection closed %v after the response", closed)
		if n := len(upstream.received()); n != 0 {
			t.Errorf("upstream received %d requests, want none", n)
		}
	})

	t.Run("trickled head", func(t *testing.T) {
		// The head never completes, so the guard never runs: read_header
		// must close the connection on its own.
		conn, reader := server.dialSite(t, 10*time.Second)
		head := server.postHead(len(body), signatureLine(firstSecret, body))
		stop := make(chan struct{})
		done := trickle(conn, []byte(head), 100*time.Millisecond, stop)
		defer func() {
			close(stop)
			<-done
		}()

		// Go's server responds to a head that times out with 400 and
		// closes the connection. Older versions closed it silently.
		start := time.Now()
		if err := conn.SetReadDeadline(start.Add(5 * time.Second)); err != nil {
			t.Fatalf("setting the read deadline: %v", err)
		}
		reply, err := io.ReadAll(reader)
		elapsed := time.Since(start)
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			t.Fatalf("connection still open after 5s, want it closed after read_header %v", testReadHeaderTimeout)
		}
		t.Logf("trickled head: connection closed after %v with %q", elapsed, reply)
		if len(reply) > 0 && !bytes.HasPrefix(reply, []byte("HTTP/1.1 400 ")) {
			t.Errorf("got %q before the connection closed, want nothing or a 400", reply)
		}
		if elapsed > testReadHeaderTimeout+2*time.Second {
			t.Errorf("connection closed after %v, want about read_header %v", elapsed, testReadHeaderTimeout)
		}
		if n := len(upstream.received()); n != 0 {
			t.Errorf("upstream received %d requests, want none", n)
		}
	})

	// The timeouts must not cut off a client that sends its body at once.
	t.Run("prompt body", func(t *testing.T) {
		c := signed(firstSecret, body)
		if resp, reply := server.send(t, c); resp.StatusCode != http.StatusOK {
			t.Fatalf("%v: got %d %q, want 200", c, resp.StatusCode, reply)
		}
		if n := len(upstream.received()); n != 1 {
			t.Errorf("upstream received %d requests, want 1", n)
		}
	})
}

func TestHostileAbortedBody(t *testing.T) {
	upstream := newRecordingUpstream(t)
	log := newAccessLog(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret)+log.directive())

	body := []byte(smartInviteBody)
	half := len(body) / 2
	signature := signatureLine(firstSecret, body)
	tests := []struct {
		name string
		data string // everything the client sends
		// halfClose closes only the client's sending side, so the
		// client can still read the response.
		halfClose bool
	}{
		{
			name:      "Content-Length, half-closed",
			data:      server.postHead(len(body), signature) + string(body[:half]),
			halfClose: true,
		},
		{
			name: "Content-Length, closed",
			data: server.postHead(len(body), signature) + string(body[:half]),
		},
		{
			name: "chunked, closed between chunks",
			data: server.postHead(-1, signature) + chunk(body[:half]),
		},
		{
			name: "chunked, closed inside a chunk",
			data: server.postHead(-1, signature) + fmt.Sprintf("%x\r\n", len(body)) + string(body[:half]),
		},
	}

	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, reader := server.dialSite(t, 10*time.Second)
			if _, err := io.WriteString(conn, tc.data); err != nil {
				t.Fatalf("writing %q: %v", tc.data, err)
			}

			if tc.halfClose {
				if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatalf("closing the sending side: %v", err)
				}
				resp, reply := readResponse(t, reader)
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("got %d %q, want 400", resp.StatusCode, reply)
				}
			} else if err := conn.Close(); err != nil {
				t.Fatalf("closing the connection: %v", err)
			}

			// Caddy writes the access log entry once the handlers are
			// done, so the upstream count below is final.
			entry := log.wait(t, i+1)[i]
			t.Logf("access log status %d", entry.Status)
			if entry.Status != http.StatusBadRequest {
				t.Errorf("access log status %d, want 400", entry.Status)
			}
			if n := len(upstream.received()); n != 0 {
				t.Errorf("upstream received %d requests, want none", n)
			}
		})
	}
}

// newH2CClient returns a client that speaks cleartext HTTP/2 with prior
// knowledge, as a proxy in front of Caddy may.
func newH2CClient() *http.Client {
	transport := &http.Transport{Protocols: new(http.Protocols)}
	transport.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}
}

// h2cServer returns a view of server whose send uses HTTP/2 without TLS.
func h2cServer(t *testing.T, server *caddyServer) *caddyServer {
	tester := caddytest.NewTester(t)
	tester.Client = newH2CClient()
	t.Cleanup(tester.Client.CloseIdleConnections)
	return &caddyServer{tester: tester, port: server.port}
}

// h2cOptions lets the test server accept cleartext HTTP/2.
const h2cOptions = `	servers {
		protocols h1 h2c
	}`

func TestHostileBodyLimit(t *testing.T) {
	const limit = 1024
	upstream := newRecordingUpstream(t)
	server := startCaddyWithOptions(t, h2cOptions, guardSite(upstream, "secret "+firstSecret, "max_body_size "+strconv.Itoa(limit)))
	h2 := h2cServer(t, server)

	framings := []struct {
		name    string
		server  *caddyServer
		proto   int
		chunked bool
	}{
		{name: "HTTP/1.1 Content-Length", server: server, proto: 1},
		{name: "HTTP/1.1 chunked", server: server, proto: 1, chunked: true},
		{name: "HTTP/2 content-length", server: h2, proto: 2},
		{name: "HTTP/2 without content-length", server: h2, proto: 2, chunked: true},
	}
	sizes := []struct {
		name   string
		size   int
		status int
	}{
		{name: "at the limit", size: limit, status: http.StatusOK},
		{name: "one byte over", size: limit + 1, status: http.StatusRequestEntityTooLarge},
	}

	for _, framing := range framings {
		for _, size := range sizes {
			t.Run(framing.name+"/"+size.name, func(t *testing.T) {
				before := len(upstream.received())
				c := signed(firstSecret, paddedBody(size.size))
				c.chunked = framing.chunked

				resp, reply := framing.server.send(t, c)
				if resp.ProtoMajor != framing.proto {
					t.Fatalf("response over HTTP/%d, want HTTP/%d", resp.ProtoMajor, framing.proto)
				}
				if resp.StatusCode != size.status {
					t.Errorf("%d-byte body: got %d %q, want %d", size.size, resp.StatusCode, reply, size.status)
				}

				requests := upstream.received()[before:]
				if size.status != http.StatusOK {
					if len(requests) != 0 {
						t.Errorf("%d-byte body: upstream received %d requests, want none", size.size, len(requests))
					}
					return
				}
				if len(requests) != 1 {
					t.Fatalf("%d-byte body: upstream received %d requests, want 1", size.size, len(requests))
				}
				if !bytes.Equal(requests[0].Body, c.body) {
					t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", requests[0].Body, c.body)
				}
				if requests[0].ContentLength != int64(size.size) {
					t.Errorf("upstream ContentLength: got %d, want %d", requests[0].ContentLength, size.size)
				}
			})
		}
	}
}

func TestHostileHTTP2(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := h2cServer(t, startCaddyWithOptions(t, h2cOptions, guardSite(upstream, "secret "+firstSecret)))
	body := []byte(smartInviteBody)
	lowercase := strings.ToLower(SignatureHeader)

	t.Run("lowercase names, no length", func(t *testing.T) {
		c := callback{body: body, chunked: true, header: map[string]string{
			lowercase:                   signatureFor(firstSecret, body),
			"x-cronofy-smart-invite-id": "spoofed",
			"x-cronofy-spoofed":         "spoofed",
		}}
		resp, reply := server.send(t, c)
		if resp.ProtoMajor != 2 {
			t.Fatalf("response over HTTP/%d, want HTTP/2", resp.ProtoMajor)
		}
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
		if len(got.TransferEncoding) != 0 {
			t.Errorf("upstream TransferEncoding: got %q, want none", got.TransferEncoding)
		}
		if id := got.Header.Values("X-Cronofy-Smart-Invite-Id"); len(id) != 1 || id[0] != "si_e2e_1" {
			t.Errorf("upstream X-Cronofy-Smart-Invite-Id: got %q, want [\"si_e2e_1\"]", id)
		}
		if spoofed := got.Header.Values("X-Cronofy-Spoofed"); len(spoofed) != 0 {
			t.Errorf("upstream X-Cronofy-Spoofed: got %q, want the header removed", spoofed)
		}
	})

	rejected := []struct {
		name string
		send callback
	}{
		{name: "unsigned", send: callback{body: body, chunked: true}},
		{name: "other secret", send: callback{body: body, chunked: true, header: map[string]string{lowercase: signatureFor(secondSecret, body)}}},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			before := len(upstream.received())
			resp, reply := server.send(t, tc.send)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%v: got %d %q, want 401", tc.send, resp.StatusCode, reply)
			}
			if n := len(upstream.received()) - before; n != 0 {
				t.Errorf("%v: upstream received %d requests, want none", tc.send, n)
			}
		})
	}
}

func TestHostileSignatureHeader(t *testing.T) {
	upstream := newRecordingUpstream(t)
	body := []byte(smartInviteBody)
	digest := signatureFor(firstSecret, body)
	jsonType := "Content-Type: application/json; charset=utf-8"

	// Go's server allows 4096 bytes over MaxHeaderBytes before it
	// responds with 431, so the sizes below stay clear of that slack.
	const megabyte = 1 << 20
	manyLines := make([]string, 0, 20_000)
	for range 20_000 {
		manyLines = append(manyLines, SignatureHeader+": ,")
	}

	tests := []struct {
		name    string
		options string // global options of the server
		headers []string
		status  int
	}{
		{
			// Caddy's default max_header_size is 16 KiB.
			name:    "24 KB value, default header limit",
			headers: []string{jsonType, SignatureHeader + ": " + strings.Repeat("A", 24_000)},
			status:  http.StatusRequestHeaderFieldsTooLarge,
		},
		{
			name:    "one element of almost 1 MiB",
			options: "max_header_size 1MiB",
			headers: []string{jsonType, SignatureHeader + ": " + strings.Repeat("A", megabyte-2048)},
			status:  http.StatusUnauthorized,
		},
		{
			name:    "400000 short elements",
			options: "max_header_size 1MiB",
			headers: []string{jsonType, SignatureHeader + ": " + strings.Repeat("x,", 400_000)},
			status:  http.StatusUnauthorized,
		},
		{
			name:    "400000 empty elements",
			options: "max_header_size 1MiB",
			headers: []string{jsonType, SignatureHeader + ": " + strings.Repeat(" ,", 400_000)},
			status:  http.StatusUnauthorized,
		},
		{
			name:    "20000 well-formed digests",
			options: "max_header_size 1MiB",
			headers: []string{jsonType, SignatureHeader + ": " + strings.Repeat(digest+",", 20_000)},
			status:  http.StatusUnauthorized,
		},
		{
			// One string keeps sendHead from concatenating 20000 times.
			name:    "20000 header lines",
			options: "max_header_size 1MiB",
			headers: []string{jsonType, strings.Join(manyLines, "\r\n")},
			status:  http.StatusUnauthorized,
		},
		{
			name:    "value over 1 MiB",
			options: "max_header_size 1MiB",
			headers: []string{jsonType, SignatureHeader + ": " + strings.Repeat("A", megabyte+8192)},
			status:  http.StatusRequestHeaderFieldsTooLarge,
		},
	}

	// Cases with the same options are adjacent and share one server.
	var server *caddyServer
	var serverOptions string
	for _, tc := range tests {
		if server == nil || tc.options != serverOptions {
			options := ""
			if tc.options != "" {
				options = "\tservers {\n\t\t" + tc.options + "\n\t}"
			}
			server = startCaddyWithOptions(t, options, guardSite(upstream, "secret "+firstSecret))
			serverOptions = tc.options
		}

		t.Run(tc.name, func(t *testing.T) {

			// Expect: 100-continue makes a body read visible, because
			// Caddy sends 100 Continue before the guard can read a byte.
			start := time.Now()
			_, reader := server.sendHead(t, len(body), tc.headers...)
			resp, err := http.ReadResponse(reader, nil)
			if err != nil {
				t.Fatalf("reading the response before sending the body: %v", err)
			}
			resp.Body.Close()
			elapsed := time.Since(start)
			t.Logf("%d after %v", resp.StatusCode, elapsed)

			if resp.StatusCode != tc.status {
				t.Errorf("got status %d before the body was sent, want %d", resp.StatusCode, tc.status)
			}
			if elapsed > 2*time.Second {
				t.Errorf("answered after %v, want well under 2s", elapsed)
			}
			if n := len(upstream.received()); n != 0 {
				t.Errorf("upstream received %d requests, want none", n)
			}
		})
	}
}

// TestHostilePipelined sends several requests in one write on one
// connection. The guard leaves some bodies unread, which Caddy must skip
// so that no body is read as the next request.
func TestHostilePipelined(t *testing.T) {
	upstream := newRecordingUpstream(t)
	server := startCaddy(t, guardSite(upstream, "secret "+firstSecret, "max_body_size 1KiB"))

	first := []byte(strings.Replace(smartInviteBody, "si_e2e_1", "si_pipelined_1", 1))
	last := []byte(strings.Replace(smartInviteBody, "si_e2e_1", "si_pipelined_2", 1))
	// A rejected body that is itself a complete request shows smuggling:
	// it would be forwarded if it were read as the next request.
	smuggled := server.postHead(len(first), signatureLine(firstSecret, first)) + string(first)
	oversized := paddedBody(2048)

	requests := []struct {
		name   string
		data   string
		status int
	}{
		{name: "valid", data: server.postHead(len(first), signatureLine(firstSecret, first)) + string(first), status: http.StatusOK},
		{name: "unsigned", data: server.postHead(len(smuggled)) + smuggled, status: http.StatusUnauthorized},
		{name: "other secret", data: server.postHead(len(smuggled), signatureLine(secondSecret, []byte(smuggled))) + smuggled, status: http.StatusUnauthorized},
		{name: "valid chunked", data: server.postHead(-1, signatureLine(firstSecret, last)) + chunk(last[:10]) + chunk(last[10:]) + "0\r\n\r\n", status: http.StatusOK},
		// A declared body over max_body_size is rejected without reading
		// it, which ends the connection, so this request comes last.
		{name: "over max_body_size", data: server.postHead(len(oversized), signatureLine(firstSecret, oversized)) + string(oversized), status: http.StatusRequestEntityTooLarge},
	}

	conn, reader := server.dialSite(t, 10*time.Second)
	var all strings.Builder
	for _, request := range requests {
		all.WriteString(request.data)
	}
	if _, err := io.WriteString(conn, all.String()); err != nil {
		t.Fatalf("writing the pipelined requests: %v", err)
	}

	for i, request := range requests {
		resp, reply := readResponse(t, reader)
		if resp.StatusCode != request.status {
			t.Errorf("%s: got %d %q, want %d", request.name, resp.StatusCode, reply, request.status)
		}
		if wantClose := i == len(requests)-1; resp.Close != wantClose {
			t.Errorf("%s: connection closed = %v, want %v", request.name, resp.Close, wantClose)
		}
	}

	got := upstream.received()
	if len(got) != 2 {
		t.Fatalf("upstream received %d requests, want 2", len(got))
	}
	for i, want := range [][]byte{first, last} {
		if !bytes.Equal(got[i].Body, want) {
			t.Errorf("upstream request %d: got body %q, want %q", i, got[i].Body, want)
		}
	}
}
