package cronofy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const httpsSecret = "CRN_httpsTestSecret0aB1cD2eF3gH4iJ5kL6mN"

// httpsHost is the name of the HTTPS test site. Caddy keeps issued
// certificates in a cache for the whole process, so a name of its own
// keeps the test apart from other sites with a local certificate.
const httpsHost = "cronofy-https.localhost"

// httpsConfig returns a Caddyfile with the same guard on an HTTPS site,
// with a certificate from Caddy's local CA, and on a plain HTTP site.
// Each passes the request's protocol and the matched secret index
// upstream, so the test can compare what the guard saw.
func httpsConfig(httpPort, httpsPort, plainPort int, upstream *recordingUpstream) string {
	guard := fmt.Sprintf(`	cronofy_callback {
		secret %s
		max_body_size 4KiB
	}
	reverse_proxy %s {
		header_up X-Test-Inbound-Proto {http.request.proto}
		header_up X-Test-Secret-Index {http.cronofy_callback.secret_index}
	}`, httpsSecret, upstream.addr())

	return globalOptions(httpPort, httpsPort,
		"local_certs",
		"servers {\n\t\tprotocols h1 h2\n\t}",
	) + fmt.Sprintf(`
https://%s:%d {
	tls internal
%s
}

:%d {
%s
}
`, httpsHost, httpsPort, guard, plainPort, guard)
}

// localCARoots returns the root certificate of Caddy's local CA, read
// from the admin API of the test Caddy.
func localCARoots(t *testing.T) *x509.CertPool {
	t.Helper()

	resp, err := http.Get("http://localhost:2999/pki/ca/local")
	if err != nil {
		t.Fatalf("reading the local CA from the admin API: %v", err)
	}
	defer resp.Body.Close()
	var ca struct {
		RootCertificate string `json:"root_certificate"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ca); err != nil {
		t.Fatalf("decoding the local CA from the admin API: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(ca.RootCertificate)) {
		t.Fatalf("the admin API returned no PEM root certificate: %q", ca.RootCertificate)
	}
	return roots
}

// localCAClient returns a client that trusts only roots, dials 127.0.0.1
// for every host, and speaks only the given protocol: "h1" or "h2".
func localCAClient(t *testing.T, roots *x509.CertPool, protocol string) *http.Client {
	t.Helper()

	var protocols http.Protocols
	switch protocol {
	case "h1":
		protocols.SetHTTP1(true)
	case "h2":
		protocols.SetHTTP2(true)
	default:
		t.Fatalf("unknown protocol %q", protocol)
	}

	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			// The test names resolve to loopback addresses that Caddy
			// may not listen on, such as ::1.
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			Protocols:       &protocols,
		},
	}
}

// waitForCertificate polls url until a TLS handshake that trusts only
// roots succeeds, because Caddy can issue the certificate in the
// background after the configuration loads. It gives up after 20
// seconds.
func waitForCertificate(t *testing.T, roots *x509.CertPool, url string) {
	t.Helper()

	client := localCAClient(t, roots, "h1")
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no TLS handshake with %s within 20 seconds: %v", url, lastErr)
}

// transportCase is one way of reaching the guard.
type transportCase struct {
	name      string
	client    *http.Client
	url       string
	wantProto string // the protocol the guard saw
}

func TestHTTPSBehavesLikeHTTP(t *testing.T) {
	ports := freePorts(t, 3)
	upstream := newRecordingUpstream(t)
	loadCaddyfile(t, httpsConfig(ports[0], ports[1], ports[2], upstream))

	roots := localCARoots(t)
	httpsURL := fmt.Sprintf("https://%s:%d/cronofy/callback", httpsHost, ports[1])
	waitForCertificate(t, roots, httpsURL)

	transports := []transportCase{
		{"plain HTTP/1.1", &http.Client{Timeout: 10 * time.Second}, fmt.Sprintf("http://127.0.0.1:%d/cronofy/callback", ports[2]), "HTTP/1.1"},
		{"HTTPS HTTP/1.1", localCAClient(t, roots, "h1"), httpsURL, "HTTP/1.1"},
		{"HTTPS HTTP/2", localCAClient(t, roots, "h2"), httpsURL, "HTTP/2.0"},
	}

	body := readCallbackFile(t, "testdata/smart_invite.json")
	spoofed := signedCallback("spoofed header", httpsSecret, body)
	spoofed.header = http.Header{"X-Cronofy-Smart-Invite-Id": {"spoofed"}, "X_cronofy_recipient_status": {"spoofed"}}
	streamed := signedCallback("unknown length", httpsSecret, body)
	streamed.unknownLength = true
	tooLarge := signedCallback("unknown length too large", httpsSecret, bytes.Repeat([]byte(" "), 5000))
	tooLarge.unknownLength = true

	accepted := []callbackRequest{signedCallback("signed", httpsSecret, body), spoofed, streamed}
	rejected := []struct {
		request callbackRequest
		status  int
	}{
		{callbackRequest{name: "unsigned", body: body}, http.StatusUnauthorized},
		{signedCallback("wrong secret", "not-the-https-secret", body), http.StatusUnauthorized},
		{tooLarge, http.StatusRequestEntityTooLarge},
	}
	wantHeaders := map[string]string{
		"X-Cronofy-Notification-Type": "smart_invite",
		"X-Cronofy-Smart-Invite-Id":   "example_id",
		"X-Cronofy-Recipient-Status":  "tentative",
		"X-Test-Secret-Index":         "0",
	}

	for _, tc := range transports {
		for _, request := range accepted {
			seen := len(upstream.received())
			resp, reply := request.send(t, tc.client, tc.url)
			name := tc.name + ": " + request.name
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: got status %d (%q), want 200", name, resp.StatusCode, reply)
				continue
			}
			if got := fmt.Sprintf("HTTP/%d.%d", resp.ProtoMajor, resp.ProtoMinor); got != tc.wantProto {
				t.Errorf("%s: response protocol %s, want %s", name, got, tc.wantProto)
			}

			calls := upstream.received()
			if len(calls) != seen+1 {
				t.Errorf("%s: upstream received %d requests, want 1", name, len(calls)-seen)
				continue
			}
			call := calls[seen]
			if !bytes.Equal(call.Body, body) {
				t.Errorf("%s: upstream body differs from the signed body:\ngot  %q\nwant %q", name, call.Body, body)
			}
			if got := call.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("%s: upstream Content-Length %q, want %d", name, got, len(body))
			}
			if got := call.Header.Get("X-Test-Inbound-Proto"); got != tc.wantProto {
				t.Errorf("%s: guard saw protocol %q, want %q", name, got, tc.wantProto)
			}
			for header, want := range wantHeaders {
				if got := call.Header.Get(header); got != want {
					t.Errorf("%s: upstream %s %q, want %q", name, header, got, want)
				}
			}
			for header := range call.Header {
				if strings.Contains(strings.ToLower(header), "cronofy_") {
					t.Errorf("%s: upstream received spoofed header %s", name, header)
				}
			}
		}

		for _, r := range rejected {
			seen := len(upstream.received())
			resp, reply := r.request.send(t, tc.client, tc.url)
			name := tc.name + ": " + r.request.name
			if resp.StatusCode != r.status {
				t.Errorf("%s: got status %d (%q), want %d", name, resp.StatusCode, reply, r.status)
			}
			if got := len(upstream.received()) - seen; got != 0 {
				t.Errorf("%s: upstream received %d requests, want none", name, got)
			}
		}
	}
}

// TestHTTPSRejectsUntrustedClient checks that the test clients really
// verify the certificate: one without the local CA must fail.
func TestHTTPSRejectsUntrustedClient(t *testing.T) {
	ports := freePorts(t, 3)
	loadCaddyfile(t, httpsConfig(ports[0], ports[1], ports[2], newRecordingUpstream(t)))
	url := fmt.Sprintf("https://%s:%d/cronofy/callback", httpsHost, ports[1])
	waitForCertificate(t, localCARoots(t), url)

	_, err := localCAClient(t, x509.NewCertPool(), "h2").Get(url)
	var unknownAuthority x509.UnknownAuthorityError
	if !errors.As(err, &unknownAuthority) {
		t.Errorf("GET with an empty root pool: got error %v, want x509.UnknownAuthorityError", err)
	}
}
