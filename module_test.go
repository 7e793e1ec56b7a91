package cronofy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Callback bodies in the compact form Cronofy sends. The Smart Invite ones
// carry escapes and a large integer, which a handler that re-serialized
// the JSON would change.
const (
	singleRecipientBody = `{"notification":{"type":"smart_invite"},` +
		`"smart_invite":{"smart_invite_id":"si_123","callback_url":"https:\/\/example.test\/cronofy?token=abc",` +
		`"sequence":12345678901234567890123,` +
		`"recipient":{"email":"zo\u00eb@example.test","status":"accepted","comment":"Caf\u00e9 at 3?",` +
		`"proposal":{"start":{"time":"2026-04-21T23:00:00+02:00","tzid":"Europe/Paris"},` +
		`"end":{"time":"2026-04-22","tzid":"Europe/Paris"}}},` +
		`"reply":{"email":"delegate@example.test","status":"tentative"}}}`

	recipientsBody = `{"notification":{"type":"smart_invite"},` +
		`"smart_invite":{"smart_invite_id":"si_456","callback_url":"https://example.test/cronofy",` +
		`"recipients":[{"email":"first@example.test","status":"pending"},` +
		`{"email":"second@example.test","status":"declined","proposal":{"start":{"time":"2026-04-21T21:00:00Z","tzid":"Etc/UTC"},` +
		`"end":{"time":"2026-04-21T22:00:00Z","tzid":"America/Chicago"}}}],` +
		`"reply":{"email":"second@example.test","status":"declined"}}}`

	// unknownTypeBody has a notification type without a built-in schema.
	unknownTypeBody = `{"notification":{"type":"calendar_sync_paused"},"channel":{"channel_id":"chn_6a8df5c5944f9501621a3083",` +
		`"callback_url":"https://example.com/cronofy","filters":{},"scheduling_conversations":{}}}`
)

// newTestHandler returns a provisioned and validated handler that accepts
// secretA and secretB. configure, when not nil, changes the configuration
// before provisioning.
func newTestHandler(t *testing.T, configure func(*Handler)) *Handler {
	t.Helper()

	h := &Handler{Secrets: []string{secretA, secretB}}
	if configure != nil {
		configure(h)
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return h
}

// provision runs Provision and then Validate on h, as Caddy does.
func provision(t *testing.T, h *Handler) error {
	t.Helper()

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		return err
	}
	return h.Validate()
}

// unsetEnv removes name from the environment for the duration of the test.
func unsetEnv(t *testing.T, name string) {
	t.Helper()

	t.Setenv(name, "")
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestProvisionErrors(t *testing.T) {
	unsetEnv(t, "UNSET_VAR_X")
	t.Setenv("CRONOFY_TEST_EMPTY", "")
	t.Setenv("CRONOFY_TEST_BLANK", " \n")

	literal := inputMarker + "-secret"
	tests := []struct {
		name    string
		secrets []string
		want    string // substring of the error message
	}{
		{"no secret", nil, "at least one client secret is required"},
		{"empty list", []string{}, "at least one client secret is required"},
		{"unset env", []string{"{env.UNSET_VAR_X}"}, "secrets[0]: placeholder {env.UNSET_VAR_X} is unset, empty or unreadable"},
		{"empty env", []string{"{env.CRONOFY_TEST_EMPTY}"}, "secrets[0]: placeholder {env.CRONOFY_TEST_EMPTY} is unset"},
		{"whitespace-only env", []string{"{env.CRONOFY_TEST_BLANK}"}, "secrets[0]: client secret is empty"},
		{"missing file", []string{"{file./nonexistent}"}, "secrets[0]: placeholder {file./nonexistent} is unset"},
		{"empty literal", []string{""}, "secrets[0]: client secret is empty"},
		{"whitespace-only literal", []string{" \t\r\n "}, "secrets[0]: client secret is empty"},
		{"second secret unset", []string{secretA, "{env.UNSET_VAR_X}"}, "secrets[1]: placeholder {env.UNSET_VAR_X}"},
		{"literal around unset env", []string{literal + "{env.UNSET_VAR_X}"}, "secrets[0]: a placeholder in it is unknown, unset or empty"},
		{"literal around unknown placeholder", []string{literal + "{http.request.uri}"}, "secrets[0]: a placeholder in it is unknown, unset or empty"},
		{"literal with two placeholders", []string{"{env.UNSET_VAR_X}" + literal + "{env.UNSET_VAR_X}"}, "secrets[0]: a placeholder in it is unknown, unset or empty"},
	}
	for _, tt := range tests {
		h := &Handler{Secrets: tt.secrets}
		err := provision(t, h)
		if err == nil {
			t.Errorf("%s: secrets %q: got nil error, want %q", tt.name, tt.secrets, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: secrets %q: got error %q, want it to contain %q", tt.name, tt.secrets, err, tt.want)
		}
		if strings.Contains(err.Error(), inputMarker) {
			t.Errorf("%s: secrets %q: error %q quotes the literal secret", tt.name, tt.secrets, err)
		}
		if strings.Contains(err.Error(), secretA) {
			t.Errorf("%s: secrets %q: error %q quotes a configured secret", tt.name, tt.secrets, err)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name      string
		configure func(*Handler)
		want      string
	}{
		{"unknown_types maybe", func(h *Handler) { h.UnknownTypes = "maybe" }, `unknown_types must be "pass" or "reject", got "maybe"`},
		{"negative max_body_size", func(h *Handler) { h.MaxBodySize = -1 }, "max_body_size must be positive, got -1"},
		{"negative max_depth", func(h *Handler) { h.MaxDepth = -1 }, "max_depth must be at least 1, got -1"},
		{"negative max_digests", func(h *Handler) { h.MaxDigests = -2 }, "max_digests must be at least 1, got -2"},
	}
	for _, tt := range tests {
		h := &Handler{Secrets: []string{inputMarker}}
		tt.configure(h)
		err := provision(t, h)
		if err == nil {
			t.Errorf("%s: config %+v: got nil error, want %q", tt.name, h, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: config %+v: got error %q, want it to contain %q", tt.name, h, err, tt.want)
		}
		if strings.Contains(err.Error(), inputMarker) {
			t.Errorf("%s: error %q quotes the secret", tt.name, err)
		}
	}
}

func TestProvisionDefaults(t *testing.T) {
	h := newTestHandler(t, nil)

	if h.MaxBodySize != DefaultMaxBodySize {
		t.Errorf("MaxBodySize = %d, want %d", h.MaxBodySize, DefaultMaxBodySize)
	}
	if h.UnknownTypes != UnknownTypesPass {
		t.Errorf("UnknownTypes = %q, want %q", h.UnknownTypes, UnknownTypesPass)
	}
	if h.MaxDepth != DefaultMaxDepth {
		t.Errorf("MaxDepth = %d, want %d", h.MaxDepth, DefaultMaxDepth)
	}
	if h.MaxDigests != DefaultMaxDigests {
		t.Errorf("MaxDigests = %d, want %d", h.MaxDigests, DefaultMaxDigests)
	}
}

// TestProvisionTrimsSecret checks that a secret read with surrounding
// whitespace, such as the final newline of a secrets file, still verifies
// Cronofy's digest.
func TestProvisionTrimsSecret(t *testing.T) {
	t.Setenv("CRONOFY_TEST_SECRET", secretA+"\n")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(" "+secretA+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	secrets := []string{
		"{env.CRONOFY_TEST_SECRET}",
		"{file." + file + "}",
		"\t" + secretA + " ",
	}
	digests, err := parseSignature(nil, []string{digestA}, DefaultMaxDigests)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range secrets {
		h := &Handler{Secrets: []string{secret}}
		if err := provision(t, h); err != nil {
			t.Errorf("secret %q: Provision: %v", secret, err)
			continue
		}
		if got := h.verifier.verify(vectorBody, digests); got != 0 {
			t.Errorf("secret %q: verify with digest %q: got %d, want 0", secret, digestA, got)
		}
	}
}

// newCallbackRequest returns a POST of body with the headers Cronofy sends,
// signed with secretA, and with the Caddy replacer and vars map that the
// server puts in every request context. edits run before the context is
// set, in order.
func newCallbackRequest(body []byte, edits ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/cronofy", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Header.Set(SignatureHeader, sign([]byte(secretA), body))
	for _, edit := range edits {
		edit(r)
	}

	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	return r.WithContext(ctx)
}

func withMethod(method string) func(*http.Request) {
	return func(r *http.Request) { r.Method = method }
}

func withHeader(name string, values ...string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Del(name)
		for _, value := range values {
			r.Header.Add(name, value)
		}
	}
}

func withoutHeader(name string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Del(name) }
}

// withRawHeader sets a header under a name that is not in canonical form,
// as a request from HTTP/2 or another handler may carry it.
func withRawHeader(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header[name] = []string{value} }
}

// withStream replaces the body stream and its declared length. A length
// of -1 makes the request chunked.
func withStream(stream io.Reader, contentLength int64) func(*http.Request) {
	return func(r *http.Request) {
		r.Body = io.NopCloser(stream)
		r.ContentLength = contentLength
		if contentLength < 0 {
			r.TransferEncoding = []string{"chunked"}
			r.Header.Del("Content-Length")
		} else {
			r.Header.Set("Content-Length", strconv.FormatInt(contentLength, 10))
		}
	}
}

// withUnreadableBody makes the test fail if the handler reads the body,
// for rejections that must happen before the upload is read.
func withUnreadableBody(t *testing.T) func(*http.Request) {
	return func(r *http.Request) { r.Body = unreadableBody{t} }
}

type unreadableBody struct{ t *testing.T }

func (b unreadableBody) Read([]byte) (int, error) {
	b.t.Error("request body was read, want the request rejected before reading")
	return 0, io.EOF
}

func (unreadableBody) Close() error { return nil }

// failingReader returns some bytes, then err, like a client that aborts.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// countingReader produces an endless stream of 'a' bytes and counts them.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	r.n += len(p)
	return len(p), nil
}

// forwarded is what the next handler observed.
type forwarded struct {
	called           bool
	body             []byte
	bodyErr          error
	getBody          []byte
	getBodyErr       error
	contentLength    int64
	transferEncoding []string
	header           http.Header
}

// recordingNext returns a next handler that reads the whole request into
// rec, including a second copy through GetBody as a retrying transport
// would, and closes both readers.
func recordingNext(rec *forwarded) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		rec.called = true
		rec.contentLength = r.ContentLength
		rec.transferEncoding = r.TransferEncoding
		rec.header = r.Header.Clone()

		rec.body, rec.bodyErr = io.ReadAll(r.Body)
		r.Body.Close()

		if r.GetBody == nil {
			rec.getBodyErr = errors.New("GetBody is nil")
		} else if again, err := r.GetBody(); err != nil {
			rec.getBodyErr = err
		} else {
			rec.getBody, rec.getBodyErr = io.ReadAll(again)
			again.Close()
		}

		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// describeRequest summarizes r for failure messages, before the handler
// changes it.
func describeRequest(r *http.Request, body []byte) string {
	return fmt.Sprintf("%s with Content-Length %d, Transfer-Encoding %q, header %v, body %q",
		r.Method, r.ContentLength, r.TransferEncoding, r.Header, body)
}

// handlerStatus returns the status of a caddyhttp.HandlerError, 0 for a
// nil error and -1 for any other error.
func handlerStatus(err error) int {
	if err == nil {
		return 0
	}
	var herr caddyhttp.HandlerError
	if !errors.As(err, &herr) {
		return -1
	}
	return herr.StatusCode
}

// TestServeHTTPStatus has one row per outcome, in the order the handler
// checks them. wantStatus 0 means the request is passed to the next
// handler.
func TestServeHTTPStatus(t *testing.T) {
	const limit = 1024
	atLimit := paddedBody(limit)
	pastLimit := paddedBody(limit + 1)
	deep := []byte(`{"notification":{"type":"x"},"a":{"b":{"c":{}}}}`)
	valid := []byte(singleRecipientBody)

	tests := []struct {
		name       string
		configure  func(*Handler)
		body       []byte
		edits      func(t *testing.T) []func(*http.Request)
		wantStatus int
	}{
		{
			name: "GET", body: valid,
			edits:      edits(withMethod(http.MethodGet)),
			wantStatus: http.StatusMethodNotAllowed,
		},
		{
			name: "PUT", body: valid,
			edits:      edits(withMethod(http.MethodPut)),
			wantStatus: http.StatusMethodNotAllowed,
		},
		{
			name: "missing signature header", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withoutHeader(SignatureHeader), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "empty signature header", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withHeader(SignatureHeader, ""), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "only malformed digests", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withHeader(SignatureHeader, "wrong,"+inputMarker), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "too many digests", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				header := strings.Repeat(digestC+",", DefaultMaxDigests) + sign([]byte(secretA), valid)
				return []func(*http.Request){withHeader(SignatureHeader, header), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "gzip Content-Encoding", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withHeader("Content-Encoding", "gzip"), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnsupportedMediaType,
		},
		{
			name: "gzip after identity", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withHeader("Content-Encoding", "identity", "gzip"), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnsupportedMediaType,
		},
		{
			name: "text/plain", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withHeader("Content-Type", "text/plain"), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnsupportedMediaType,
		},
		{
			name: "missing Content-Type", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withoutHeader("Content-Type"), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnsupportedMediaType,
		},
		{
			name: "two Content-Type lines", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withHeader("Content-Type", "application/json", "text/plain"), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnsupportedMediaType,
		},
		{
			name: "malformed Content-Type", body: valid,
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withHeader("Content-Type", "application/json; charset"), withUnreadableBody(t)}
			},
			wantStatus: http.StatusUnsupportedMediaType,
		},
		{
			name: "mixed-case Content-Type", body: valid,
			edits:      edits(withHeader("Content-Type", "Application/JSON; Charset=UTF-8")),
			wantStatus: 0,
		},
		{
			name: "identity Content-Encoding", body: valid,
			edits:      edits(withHeader("Content-Encoding", "identity")),
			wantStatus: 0,
		},
		{
			name: "Content-Length past limit", body: pastLimit,
			configure: func(h *Handler) { h.MaxBodySize = limit },
			edits: func(t *testing.T) []func(*http.Request) {
				return []func(*http.Request){withUnreadableBody(t)}
			},
			wantStatus: http.StatusRequestEntityTooLarge,
		},
		{
			name: "chunked past limit", body: pastLimit,
			configure:  func(h *Handler) { h.MaxBodySize = limit },
			edits:      edits(withStream(bytes.NewReader(pastLimit), -1)),
			wantStatus: http.StatusRequestEntityTooLarge,
		},
		{
			name: "Content-Length at limit", body: atLimit,
			configure:  func(h *Handler) { h.MaxBodySize = limit },
			wantStatus: 0,
		},
		{
			name: "chunked at limit", body: atLimit,
			configure:  func(h *Handler) { h.MaxBodySize = limit },
			edits:      edits(withStream(bytes.NewReader(atLimit), -1)),
			wantStatus: 0,
		},
		{
			name: "chunked with max_body_size just under 2GiB", body: valid,
			configure:  func(h *Handler) { h.MaxBodySize = math.MaxInt32 },
			edits:      edits(withStream(bytes.NewReader(valid), -1)),
			wantStatus: 0,
		},
		{
			name: "chunked with max_body_size past 4GiB", body: valid,
			configure:  func(h *Handler) { h.MaxBodySize = 1<<32 + 1 },
			edits:      edits(withStream(bytes.NewReader(valid), -1)),
			wantStatus: 0,
		},
		{
			name: "Content-Length with max_body_size past 4GiB", body: valid,
			configure:  func(h *Handler) { h.MaxBodySize = 1<<32 + 1 },
			wantStatus: 0,
		},
		{
			name: "body shorter than Content-Length", body: valid,
			edits:      edits(withStream(bytes.NewReader(valid[:10]), int64(len(valid)))),
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "client aborts upload", body: valid,
			edits:      edits(withStream(&failingReader{data: valid[:10], err: errors.New("connection reset")}, -1)),
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "digest of another secret", body: valid,
			edits:      edits(withHeader(SignatureHeader, sign([]byte(inputMarker), valid))),
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "body changed after signing", body: valid,
			edits:      edits(withHeader(SignatureHeader, sign([]byte(secretA), []byte(strings.Replace(singleRecipientBody, "accepted", "declined", 1))))),
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "empty body", body: []byte{},
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "invalid JSON", body: []byte(`{"notification":{"type":"` + inputMarker + `"}`),
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "duplicate keys", body: []byte(`{"notification":{"type":"smart_invite"},"notification":{"type":"` + inputMarker + `"}}`),
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "nesting past max_depth", body: deep,
			configure:  func(h *Handler) { h.MaxDepth = 3 },
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "top-level array", body: []byte(`[{"notification":{"type":"smart_invite"}}]`),
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "missing notification.type", body: []byte(`{"notification":{"kind":"` + inputMarker + `"}}`),
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name: "missing notification", body: []byte(`{"channel":{"channel_id":"` + inputMarker + `"}}`),
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name: "non-string notification.type", body: []byte(`{"notification":{"type":7}}`),
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name: "null notification.type", body: []byte(`{"notification":{"type":null}}`),
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name: "smart_invite schema failure", body: []byte(strings.Replace(singleRecipientBody, `"status":"accepted"`, `"status":"`+inputMarker+`"`, 1)),
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name: "unknown type by default", body: []byte(unknownTypeBody),
			wantStatus: 0,
		},
		{
			name: "unknown type with unknown_types reject", body: []byte(unknownTypeBody),
			configure:  func(h *Handler) { h.UnknownTypes = UnknownTypesReject },
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name: "smart_invite with unknown_types reject", body: valid,
			configure:  func(h *Handler) { h.UnknownTypes = UnknownTypesReject },
			wantStatus: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, tt.configure)
			var requestEdits []func(*http.Request)
			if tt.edits != nil {
				requestEdits = tt.edits(t)
			}
			r := newCallbackRequest(tt.body, requestEdits...)
			input := describeRequest(r, tt.body)

			var rec forwarded
			w := httptest.NewRecorder()
			err := h.ServeHTTP(w, r, recordingNext(&rec))

			if got := handlerStatus(err); got != tt.wantStatus {
				t.Errorf("request %s: got status %d (error %v), want %d", input, got, err, tt.wantStatus)
			}
			if got, want := rec.called, tt.wantStatus == 0; got != want {
				t.Errorf("request %s: next handler called = %t, want %t", input, got, want)
			}
			if err != nil && strings.Contains(err.Error(), inputMarker) {
				t.Errorf("request %s: error %q quotes the body or a header", input, err)
			}
			if err != nil && strings.Contains(err.Error(), secretA) {
				t.Errorf("request %s: error %q quotes the client secret", input, err)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed {
				if got := w.Header().Get("Allow"); got != http.MethodPost {
					t.Errorf("request %s: Allow header = %q, want %q", input, got, http.MethodPost)
				}
			}
		})
	}
}

// TestServeHTTPChunkedStopsAtLimit checks that a body without a declared
// length is read only until it passes max_body_size, so an endless upload
// costs at most the limit in memory.
func TestServeHTTPChunkedStopsAtLimit(t *testing.T) {
	const limit = 100 << 10
	h := newTestHandler(t, func(h *Handler) { h.MaxBodySize = limit })
	stream := &countingReader{}
	r := newCallbackRequest(nil, withStream(stream, -1))

	var rec forwarded
	err := h.ServeHTTP(httptest.NewRecorder(), r, recordingNext(&rec))

	if got := handlerStatus(err); got != http.StatusRequestEntityTooLarge {
		t.Errorf("endless chunked body: got status %d (error %v), want %d", got, err, http.StatusRequestEntityTooLarge)
	}
	if stream.n > limit+1 {
		t.Errorf("endless chunked body: read %d bytes, want at most %d", stream.n, limit+1)
	}
}

// TestServeHTTPForwardsSingleRecipient checks what the next handler
// receives for a chunked Smart Invite callback with spoofed headers, signed with
// the second of two client secrets during a rotation.
func TestServeHTTPForwardsSingleRecipient(t *testing.T) {
	body := []byte(singleRecipientBody)
	signature := "wrong, " + sign([]byte(secretB), body)
	h := newTestHandler(t, nil)
	r := newCallbackRequest(body,
		withStream(bytes.NewReader(body), -1),
		withHeader(SignatureHeader, signature),
		withHeader("Expect", "100-continue"),
		withHeader("X-Cronofy-Smart-Invite-Id", "spoofed"),
		withHeader("X-Cronofy-Extra", "spoofed"),
		withRawHeader("x-cronofy-recipient-email", "spoofed"),
		withRawHeader("X_Cronofy_Reply_Status", "spoofed"),
		withHeader("X-Other", "kept"),
	)
	input := describeRequest(r, body)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)

	var rec forwarded
	if err := h.ServeHTTP(httptest.NewRecorder(), r, recordingNext(&rec)); err != nil {
		t.Fatalf("request %s: got error %v, want nil", input, err)
	}
	if !rec.called {
		t.Fatalf("request %s: next handler not called", input)
	}

	checkForwardedBody(t, input, &rec, body)

	for _, name := range []string{"X-Cronofy-Extra", "x-cronofy-recipient-email", "X_Cronofy_Reply_Status"} {
		if values, ok := rec.header[name]; ok {
			t.Errorf("request %s: forwarded header %q = %q, want removed", input, name, values)
		}
	}

	wantHeaders := []struct{ name, value string }{
		{"X-Cronofy-Notification-Type", "smart_invite"},
		{"X-Cronofy-Smart-Invite-Id", "si_123"},
		{"X-Cronofy-Recipient-Email", "zo%C3%AB@example.test"},
		{"X-Cronofy-Recipient-Status", "accepted"},
		{"X-Cronofy-Reply-Email", "delegate@example.test"},
		{"X-Cronofy-Reply-Status", "tentative"},
		{SignatureHeader, signature},
		{"X-Other", "kept"},
	}
	for _, want := range wantHeaders {
		if got := rec.header.Values(want.name); !slices.Equal(got, []string{want.value}) {
			t.Errorf("request %s: forwarded header %s = %q, want [%q]", input, want.name, got, want.value)
		}
	}

	wantPlaceholders := []struct{ name, value string }{
		{"secret_index", "1"},
		{"notification_type", "smart_invite"},
		{"smart_invite_id", "si_123"},
		{"callback_url", "https://example.test/cronofy?token=abc"},
		{"recipient.email", "zoë@example.test"},
		{"recipient.status", "accepted"},
		{"recipient.comment", "Café at 3?"},
		{"recipient.proposal.start.time", "2026-04-21T23:00:00+02:00"},
		{"recipient.proposal.start.tzid", "Europe/Paris"},
		{"recipient.proposal.end.time", "2026-04-22"},
		{"recipient.proposal.end.tzid", "Europe/Paris"},
		{"reply.email", "delegate@example.test"},
		{"reply.status", "tentative"},
	}
	checkPlaceholders(t, input, repl, wantPlaceholders)

	for _, name := range []string{"recipients.count", "reply.comment", "reply.proposal.start.time"} {
		if value, ok := repl.Get(placeholderPrefix + name); ok {
			t.Errorf("request %s: placeholder %s = %v, want unset", input, name, value)
		}
	}
}

// TestServeHTTPForwardsRecipients checks a callback for an invite with
// several recipients. Their values become placeholders only, and the
// single-recipient headers stay unset even when a client sent them.
func TestServeHTTPForwardsRecipients(t *testing.T) {
	body := []byte(recipientsBody)
	h := newTestHandler(t, nil)
	r := newCallbackRequest(body,
		withHeader("X-Cronofy-Recipient-Email", "spoofed"),
		withHeader("X-Cronofy-Recipient-Status", "spoofed"),
	)
	input := describeRequest(r, body)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)

	var rec forwarded
	if err := h.ServeHTTP(httptest.NewRecorder(), r, recordingNext(&rec)); err != nil {
		t.Fatalf("request %s: got error %v, want nil", input, err)
	}

	checkForwardedBody(t, input, &rec, body)

	for _, name := range []string{"X-Cronofy-Recipient-Email", "X-Cronofy-Recipient-Status"} {
		if values, ok := rec.header[name]; ok {
			t.Errorf("request %s: forwarded header %s = %q, want removed", input, name, values)
		}
	}
	wantHeaders := []struct{ name, value string }{
		{"X-Cronofy-Notification-Type", "smart_invite"},
		{"X-Cronofy-Smart-Invite-Id", "si_456"},
		{"X-Cronofy-Reply-Email", "second@example.test"},
		{"X-Cronofy-Reply-Status", "declined"},
	}
	for _, want := range wantHeaders {
		if got := rec.header.Values(want.name); !slices.Equal(got, []string{want.value}) {
			t.Errorf("request %s: forwarded header %s = %q, want [%q]", input, want.name, got, want.value)
		}
	}

	checkPlaceholders(t, input, repl, []struct{ name, value string }{
		{"secret_index", "0"},
		{"recipients.count", "2"},
		{"recipients.0.email", "first@example.test"},
		{"recipients.0.status", "pending"},
		{"recipients.1.email", "second@example.test"},
		{"recipients.1.status", "declined"},
		{"recipients.1.proposal.start.time", "2026-04-21T21:00:00Z"},
		{"recipients.1.proposal.start.tzid", "Etc/UTC"},
		{"recipients.1.proposal.end.time", "2026-04-21T22:00:00Z"},
		{"recipients.1.proposal.end.tzid", "America/Chicago"},
	})

	for _, name := range []string{"recipient.email", "recipients.0.proposal.start.time", "recipients.2.email"} {
		if value, ok := repl.Get(placeholderPrefix + name); ok {
			t.Errorf("request %s: placeholder %s = %v, want unset", input, name, value)
		}
	}
}

// TestServeHTTPForwardsUnknownType checks that a type without a schema is
// passed on with only its type exposed, and that spoofed Smart Invite
// headers do not survive.
func TestServeHTTPForwardsUnknownType(t *testing.T) {
	body := []byte(`{"notification":{"type":"typ\u00e9_new","n":12345678901234567890123},` +
		`"smart_invite":{"smart_invite_id":"not exposed"}}`)
	h := newTestHandler(t, nil)
	r := newCallbackRequest(body, withHeader("X-Cronofy-Smart-Invite-Id", "spoofed"))
	input := describeRequest(r, body)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)

	var rec forwarded
	if err := h.ServeHTTP(httptest.NewRecorder(), r, recordingNext(&rec)); err != nil {
		t.Fatalf("request %s: got error %v, want nil", input, err)
	}

	checkForwardedBody(t, input, &rec, body)

	if got, want := rec.header.Values("X-Cronofy-Notification-Type"), []string{"typ%C3%A9_new"}; !slices.Equal(got, want) {
		t.Errorf("request %s: forwarded header X-Cronofy-Notification-Type = %q, want %q", input, got, want)
	}
	if values, ok := rec.header["X-Cronofy-Smart-Invite-Id"]; ok {
		t.Errorf("request %s: forwarded header X-Cronofy-Smart-Invite-Id = %q, want removed", input, values)
	}
	checkPlaceholders(t, input, repl, []struct{ name, value string }{
		{"secret_index", "0"},
		{"notification_type", "typé_new"},
	})
	if value, ok := repl.Get(placeholderPrefix + "smart_invite_id"); ok {
		t.Errorf("request %s: placeholder smart_invite_id = %v, want unset", input, value)
	}
}

// TestServeHTTPGetBodyAfterRelease checks that once the request is done
// and every reader is closed, GetBody fails instead of returning a
// recycled buffer that may hold another request's body.
func TestServeHTTPGetBodyAfterRelease(t *testing.T) {
	body := []byte(singleRecipientBody)
	h := newTestHandler(t, nil)
	r := newCallbackRequest(body)

	var getBody func() (io.ReadCloser, error)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		getBody = r.GetBody
		return r.Body.Close()
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}

	reader, err := getBody()
	if err == nil {
		got, _ := io.ReadAll(reader)
		t.Errorf("GetBody after the request finished returned %q, want an error", got)
	}
}

// TestServeHTTPBodyOutlivesRequest checks that a body reader still open
// after ServeHTTP returns keeps its bytes while later requests reuse pooled
// buffers. A transport that is still sending upstream holds such a reader.
func TestServeHTTPBodyOutlivesRequest(t *testing.T) {
	h := newTestHandler(t, nil)
	first := []byte(singleRecipientBody)

	var kept io.ReadCloser
	keep := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		kept = r.Body
		return nil
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), newCallbackRequest(first), keep); err != nil {
		t.Fatalf("first request: %v", err)
	}

	// Later bodies of the same length, so that they fit a recycled buffer.
	second := []byte(strings.Replace(singleRecipientBody, "accepted", "declined", 1))
	for range 4 {
		var rec forwarded
		if err := h.ServeHTTP(httptest.NewRecorder(), newCallbackRequest(second), recordingNext(&rec)); err != nil {
			t.Fatalf("later request: %v", err)
		}
	}

	got, err := io.ReadAll(kept)
	kept.Close()
	if err != nil {
		t.Fatalf("reading the kept body: %v", err)
	}
	if !bytes.Equal(got, first) {
		t.Errorf("kept body after later requests = %q, want %q", got, first)
	}
}

func checkForwardedBody(t *testing.T, input string, rec *forwarded, body []byte) {
	t.Helper()

	if rec.bodyErr != nil {
		t.Errorf("request %s: reading the forwarded body: %v", input, rec.bodyErr)
	}
	if !bytes.Equal(rec.body, body) {
		t.Errorf("request %s: forwarded body = %q, want %q", input, rec.body, body)
	}
	if rec.contentLength != int64(len(body)) {
		t.Errorf("request %s: forwarded ContentLength = %d, want %d", input, rec.contentLength, len(body))
	}
	if got, want := rec.header.Values("Content-Length"), []string{strconv.Itoa(len(body))}; !slices.Equal(got, want) {
		t.Errorf("request %s: forwarded Content-Length header = %q, want %q", input, got, want)
	}
	if len(rec.transferEncoding) != 0 {
		t.Errorf("request %s: forwarded TransferEncoding = %q, want none", input, rec.transferEncoding)
	}
	if values, ok := rec.header["Expect"]; ok {
		t.Errorf("request %s: forwarded Expect header = %q, want removed", input, values)
	}
	if rec.getBodyErr != nil {
		t.Errorf("request %s: GetBody: %v", input, rec.getBodyErr)
	}
	if !bytes.Equal(rec.getBody, body) {
		t.Errorf("request %s: GetBody returned %q, want %q", input, rec.getBody, body)
	}
}

func checkPlaceholders(t *testing.T, input string, repl *caddy.Replacer, want []struct{ name, value string }) {
	t.Helper()

	for _, p := range want {
		value, ok := repl.Get(placeholderPrefix + p.name)
		if !ok {
			t.Errorf("request %s: placeholder %s unset, want %q", input, p.name, p.value)
			continue
		}
		if got := fmt.Sprint(value); got != p.value {
			t.Errorf("request %s: placeholder %s = %q, want %q", input, p.name, got, p.value)
		}
	}
}

// edits returns a row's request edits for rows that need no *testing.T.
func edits(list ...func(*http.Request)) func(*testing.T) []func(*http.Request) {
	return func(*testing.T) []func(*http.Request) { return list }
}

// paddedBody returns a JSON object of an unknown notification type that
// is exactly size bytes long.
func paddedBody(size int) []byte {
	const head, tail = `{"notification":{"type":"padded"},"pad":"`, `"}`
	return []byte(head + strings.Repeat("a", size-len(head)-len(tail)) + tail)
}
