package cronofy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The fuzz targets run briefly in CI and for longer with the commands in
// SECURITY.md. Inputs that once failed are kept under testdata/fuzz and
// run as regular tests by "go test".

const fuzzSecret = "CRN_fuzz00000000000000000000000000000000"

// fuzzBodies returns the callback bodies shipped in testdata, the seeds of
// every body-shaped fuzz target.
func fuzzBodies(f *testing.F) [][]byte {
	f.Helper()
	paths, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	more, err := filepath.Glob("testdata/callbacks/*.json")
	if err != nil {
		f.Fatal(err)
	}
	var bodies [][]byte
	for _, path := range append(paths, more...) {
		body, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	return append(bodies,
		[]byte(`{"example":"well-known"}`),
		[]byte(`{"a":1,"a":2}`),
		[]byte(`{"n":12345678901234567890123,"s":"\u00e9\/"}`),
		[]byte(`[{}]`),
		[]byte("{\"bad\":\"\xff\"}"),
	)
}

func FuzzParseSignature(f *testing.F) {
	good := sign([]byte(fuzzSecret), []byte(`{"example":"well-known"}`))
	for _, seed := range []string{
		"", good, "wrong," + good + ",wrong-again", " \t" + good + " ,", good + "," + good,
		strings.TrimRight(good, "="), strings.NewReplacer("+", "-", "/", "_").Replace(good),
		good[:20] + "\n" + good[20:], strings.Repeat(",", 100),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, header string) {
		digests, err := parseSignature(nil, []string{header}, DefaultMaxDigests)
		if err != nil && len(digests) > 0 && err != errTooManyDigests {
			t.Fatalf("parseSignature(%q) returned digests with error %v", header, err)
		}
		if len(digests) > DefaultMaxDigests {
			t.Fatalf("parseSignature(%q) returned %d digests, max %d", header, len(digests), DefaultMaxDigests)
		}

		// Every accepted digest is the canonical encoding of an element
		// that the header contains verbatim.
		for _, d := range digests {
			encoded := base64.StdEncoding.EncodeToString(d[:])
			if !strings.Contains(header, encoded) {
				t.Fatalf("parseSignature(%q) accepted a digest whose canonical form %q is not in the header", header, encoded)
			}
		}
	})
}

func FuzzParseObject(f *testing.F) {
	for _, body := range fuzzBodies(f) {
		f.Add(body)
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		tree, err := parseObject(body, DefaultMaxDepth)
		if err != nil {
			if bytes.Contains([]byte(err.Error()), body) && len(body) > 8 {
				t.Fatalf("error %q quotes the body", err)
			}
			return
		}

		// Whatever parseObject accepts, a standard parser reads as the
		// same single object, so a backend sees what was validated.
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("parseObject accepted invalid JSON or UTF-8: %q", body)
		}
		var standard map[string]any
		decoder := json.NewDecoder(bytes.NewReader(body))
		decoder.UseNumber()
		if err := decoder.Decode(&standard); err != nil {
			t.Fatalf("parseObject accepted %q but encoding/json failed: %v", body, err)
		}
		if len(standard) != len(tree) {
			t.Fatalf("parseObject read %d members, encoding/json %d, from %q", len(tree), len(standard), body)
		}
	})
}

func FuzzCheckSchema(f *testing.F) {
	for _, body := range fuzzBodies(f) {
		f.Add(body)
	}
	h := provisionFuzzHandler(f)

	f.Fuzz(func(t *testing.T, body []byte) {
		tree, err := parseObject(body, DefaultMaxDepth)
		if err != nil {
			return
		}
		notificationType, fields, err := h.checkSchema(tree)
		if err != nil {
			return
		}
		header := make(http.Header)
		exposeFields(fields, tree, header, caddy.NewEmptyReplacer())
		for name, values := range header {
			for _, value := range values {
				for i := 0; i < len(value); i++ {
					if needsEscape(value[i]) && value[i] != '%' {
						t.Fatalf("header %s = %q has an unescaped byte %#x (type %q)", name, value, value[i], notificationType)
					}
				}
			}
		}
	})
}

func provisionFuzzHandler(f *testing.F) *Handler {
	f.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	f.Cleanup(cancel)
	h := &Handler{Secrets: []string{fuzzSecret, "second fuzz secret"}}
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		f.Fatal(err)
	}
	h.logger = zap.NewNop()
	return h
}

// FuzzServeHTTP drives the whole handler. Whatever the input, the next
// handler runs only with the exact bytes received, and only when a
// configured secret's digest of those bytes is in the signature header.
func FuzzServeHTTP(f *testing.F) {
	for i, body := range fuzzBodies(f) {
		signature := sign([]byte(fuzzSecret), body)
		if i%2 == 1 {
			signature = "bogus," + signature
		}
		f.Add(body, signature, "application/json; charset=utf-8", int64(len(body)))
		f.Add(body, "", "application/json", int64(-1))
	}
	h := provisionFuzzHandler(f)

	f.Fuzz(func(t *testing.T, body []byte, signature, contentType string, declaredLength int64) {
		if declaredLength < -1 || declaredLength > int64(len(body))+16 {
			declaredLength = int64(len(body))
		}
		// A server hands a handler at most Content-Length bytes, so those
		// are what the handler received.
		received := body
		if declaredLength >= 0 && declaredLength < int64(len(body)) {
			received = body[:declaredLength]
		}

		var forwarded []byte
		var called bool
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			called = true
			var err error
			forwarded, err = io.ReadAll(r.Body)
			if r.ContentLength != int64(len(forwarded)) {
				t.Fatalf("ContentLength %d for %d forwarded bytes", r.ContentLength, len(forwarded))
			}
			return err
		})

		req := httptest.NewRequest(http.MethodPost, "/cronofy", bytes.NewReader(body))
		req.ContentLength = declaredLength
		req.Header.Set("Content-Type", contentType)
		if signature != "" {
			req.Header.Set(SignatureHeader, signature)
		}
		ctx := context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
		req = req.WithContext(ctx)

		err := h.ServeHTTP(httptest.NewRecorder(), req, next)
		if !called {
			if err == nil {
				t.Fatalf("request neither forwarded nor rejected")
			}
			return
		}

		if !bytes.Equal(forwarded, received) {
			t.Fatalf("forwarded %q, received %q", forwarded, received)
		}
		if !strings.Contains(signature, sign([]byte(fuzzSecret), received)) && !strings.Contains(signature, sign([]byte("second fuzz secret"), received)) {
			t.Fatalf("forwarded a body whose signature %q contains no configured digest", signature)
		}
	})
}
