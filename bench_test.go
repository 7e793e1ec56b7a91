package cronofy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Every benchmark family has an "hmac_baseline" row that computes one
// HMAC-SHA256 of the same bytes with the standard library, the floor that
// any signature check has to pay, so the ratio to it reads off one run.

const benchSecret = "CRN_bench0000000000000000000000000000000"

func benchmarkHMACBaseline(b *testing.B, body []byte) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		mac := hmac.New(sha256.New, []byte(benchSecret))
		mac.Write(body)
		mac.Sum(nil)
	}
}

func BenchmarkVerify(b *testing.B) {
	sizes := []struct {
		name string
		size int
	}{
		{"200B", 200},
		{"1KiB", 1 << 10},
		{"64KiB", 64 << 10},
		{"1MiB", 1 << 20},
	}
	for _, size := range sizes {
		body := bytes.Repeat([]byte("x"), size.size)
		b.Run(size.name+"/hmac_baseline", func(b *testing.B) {
			benchmarkHMACBaseline(b, body)
		})

		for _, secretCount := range []int{1, 2} {
			// The matching secret comes last, so every secret is hashed.
			secrets := []string{"CRN_other000000000000000000000000000000", benchSecret}[2-secretCount:]
			header := []string{sign([]byte(benchSecret), body)}
			v := newVerifier(secrets)

			b.Run(fmt.Sprintf("%s/secrets=%d", size.name, secretCount), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				var storage [DefaultMaxDigests]digest
				for b.Loop() {
					digests, err := parseSignature(storage[:0], header, DefaultMaxDigests)
					if err != nil {
						b.Fatal(err)
					}
					if v.verify(body, digests) != secretCount-1 {
						b.Fatal("signature did not verify")
					}
				}
			})
		}
	}
}

// benchHandler returns a provisioned handler and a request that can be
// served again and again: serve resets its body before every call.
func benchHandler(b *testing.B, body []byte, signature string) (*Handler, func() error) {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)

	h := &Handler{Secrets: []string{benchSecret}}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	// Rejections are logged at info; a benchmark measures the check.
	h.logger = zap.NewNop()

	req := httptest.NewRequest(http.MethodPost, "/cronofy", nil)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if signature != "" {
		req.Header.Set(SignatureHeader, signature)
	}
	repl := caddy.NewReplacer()
	reqCtx := context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl)
	reqCtx = context.WithValue(reqCtx, caddyhttp.VarsCtxKey, map[string]any{})
	req = req.WithContext(reqCtx)

	w := httptest.NewRecorder()
	reader := bytes.NewReader(body)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		// Read the body as reverse_proxy would, then close it.
		_, err := io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return err
	})

	serve := func() error {
		reader.Reset(body)
		req.Body = io.NopCloser(reader)
		req.ContentLength = int64(len(body))
		return h.ServeHTTP(w, req, next)
	}
	return h, serve
}

func BenchmarkServeHTTP(b *testing.B) {
	invite, err := os.ReadFile("testdata/smart_invite.json")
	if err != nil {
		b.Fatal(err)
	}
	schemaFailure := bytes.Replace(invite, []byte(`"tentative"`), []byte(`"maybe"`), 1)
	invalidJSON := append(bytes.TrimRight(bytes.Clone(invite), "}\n"), ',', '}')

	b.Run("smart_invite_1KiB/hmac_baseline", func(b *testing.B) {
		benchmarkHMACBaseline(b, invite)
	})

	tests := []struct {
		name      string
		body      []byte
		signature string
		wantErr   bool
	}{
		{"smart_invite_1KiB/accepted", invite, sign([]byte(benchSecret), invite), false},
		{"rejected/no_signature", invite, "", true},
		{"rejected/wrong_digest", invite, sign([]byte("another secret"), invite), true},
		{"rejected/invalid_json", invalidJSON, sign([]byte(benchSecret), invalidJSON), true},
		{"rejected/schema_failure", schemaFailure, sign([]byte(benchSecret), schemaFailure), true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			_, serve := benchHandler(b, tt.body, tt.signature)
			if err := serve(); (err != nil) != tt.wantErr {
				b.Fatalf("ServeHTTP error = %v, want error %v", err, tt.wantErr)
			}
			b.SetBytes(int64(len(tt.body)))
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}

// BenchmarkParse splits the handler's cost into JSON parsing and schema
// validation of the Smart Invite example.
func BenchmarkParse(b *testing.B) {
	invite, err := os.ReadFile("testdata/smart_invite.json")
	if err != nil {
		b.Fatal(err)
	}
	builtins, err := compiledBuiltins()
	if err != nil {
		b.Fatal(err)
	}

	b.Run("parse_object", func(b *testing.B) {
		b.SetBytes(int64(len(invite)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseObject(invite, DefaultMaxDepth); err != nil {
				b.Fatal(err)
			}
		}
	})

	tree, err := parseObject(invite, DefaultMaxDepth)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("validate_smart_invite", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := builtins["smart_invite"].schema.Validate(any(tree)); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("strip_and_set_headers", func(b *testing.B) {
		header := http.Header{"X-Cronofy-Smart-Invite-Id": {"spoofed"}, "Content-Type": {"application/json"}}
		repl := caddy.NewEmptyReplacer()
		b.ReportAllocs()
		for b.Loop() {
			stripOwnedHeaders(header)
			exposeFields(builtins["smart_invite"].fields, tree, header, repl)
		}
	})
}
