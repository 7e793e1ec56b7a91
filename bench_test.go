package cronofy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	jsonv2 "github.com/go-json-experiment/json"
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

// benchRequest describes the request a benchmark sends again and again.
type benchRequest struct {
	body      []byte
	signature string
	// secrets are the handler's client secrets. The default is benchSecret
	// alone.
	secrets []string
	// contentLength overrides the declared length when it is not 0.
	contentLength int64
	wantErr       bool
}

// benchServe returns a function that serves one new request through a
// provisioned handler, and one that builds the same request without
// serving it. Each request gets a fresh header map, replacer and context,
// as in Caddy, so the allocations that the handler causes in them (map
// growth for each header and placeholder it sets) are counted. The
// "request_setup" row measures setup alone, to be subtracted.
func benchServe(b *testing.B, spec benchRequest) (serve, setup func() error) {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)

	secrets := spec.secrets
	if secrets == nil {
		secrets = []string{benchSecret}
	}
	h := &Handler{Secrets: secrets}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	// Rejections are logged at info; a benchmark measures the check.
	h.logger = zap.NewNop()

	header := http.Header{}
	header.Set("Content-Type", "application/json; charset=utf-8")
	header.Set("User-Agent", "Cronofy")
	header.Set("Accept-Encoding", "gzip")
	if spec.signature != "" {
		header.Set(SignatureHeader, spec.signature)
	}
	contentLength := int64(len(spec.body))
	if spec.contentLength != 0 {
		contentLength = spec.contentLength
	}

	w := httptest.NewRecorder()
	reader := bytes.NewReader(spec.body)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		// Read the body as reverse_proxy would, then close it.
		_, err := io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return err
	})

	newRequest := func() *http.Request {
		reader.Reset(spec.body)
		repl := caddy.NewReplacer()
		reqCtx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
		reqCtx = context.WithValue(reqCtx, caddyhttp.VarsCtxKey, map[string]any{})
		r := &http.Request{
			Method:        http.MethodPost,
			URL:           &url.URL{Path: "/cronofy"},
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        header.Clone(),
			Body:          io.NopCloser(reader),
			ContentLength: contentLength,
			Host:          "example.com",
			RemoteAddr:    "192.0.2.1:1234",
		}
		return r.WithContext(reqCtx)
	}

	check := func(err error) error {
		if (err != nil) != spec.wantErr {
			return fmt.Errorf("ServeHTTP error = %v, want error %v", err, spec.wantErr)
		}
		return nil
	}
	serve = func() error {
		return check(h.ServeHTTP(w, newRequest(), next))
	}
	setup = func() error {
		if newRequest() == nil {
			return errors.New("no request")
		}
		return nil
	}
	return serve, setup
}

func BenchmarkServeHTTP(b *testing.B) {
	invite, err := os.ReadFile("testdata/smart_invite.json")
	if err != nil {
		b.Fatal(err)
	}
	schemaFailure := bytes.Replace(invite, []byte(`"tentative"`), []byte(`"maybe"`), 1)
	invalidJSON := append(bytes.TrimRight(bytes.Clone(invite), "}\n"), ',', '}')
	large := bytes.Repeat([]byte("x"), 1<<20)
	rotation := []string{"CRN_other000000000000000000000000000000", benchSecret}

	b.Run("smart_invite_1KiB/hmac_baseline", func(b *testing.B) {
		benchmarkHMACBaseline(b, invite)
	})

	tests := []struct {
		name string
		req  benchRequest
	}{
		{"smart_invite_1KiB/accepted", benchRequest{body: invite, signature: sign([]byte(benchSecret), invite)}},
		{"smart_invite_1KiB/accepted_secrets=2", benchRequest{body: invite, signature: sign([]byte(benchSecret), invite), secrets: rotation}},
		{"rejected/no_signature", benchRequest{body: invite, wantErr: true}},
		// Compare with no_signature: the signature header is checked
		// before the body is read, so the body size should not matter.
		{"rejected/no_signature_1MiB", benchRequest{body: large, wantErr: true}},
		{"rejected/too_large", benchRequest{body: invite, signature: sign([]byte(benchSecret), invite), contentLength: DefaultMaxBodySize + 1, wantErr: true}},
		{"rejected/wrong_digest", benchRequest{body: invite, signature: sign([]byte("another secret"), invite), wantErr: true}},
		{"rejected/invalid_json", benchRequest{body: invalidJSON, signature: sign([]byte(benchSecret), invalidJSON), wantErr: true}},
		{"rejected/schema_failure", benchRequest{body: schemaFailure, signature: sign([]byte(benchSecret), schemaFailure), wantErr: true}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			serve, _ := benchServe(b, tt.req)
			if !tt.req.wantErr {
				b.SetBytes(int64(len(tt.req.body)))
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := serve(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	b.Run("request_setup", func(b *testing.B) {
		_, setup := benchServe(b, tests[0].req)
		b.ReportAllocs()
		for b.Loop() {
			setup()
		}
	})
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

// decodeStdlib decodes body as encoding/json does with UseNumber, which is
// what a lenient handler would use. It rejects data after the value, but a
// duplicate key silently keeps the last value and invalid UTF-8 becomes
// U+FFFD.
func decodeStdlib(body []byte) (map[string]any, error) {
	dec := stdjson.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var tree map[string]any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return tree, nil
}

// decodeJSONv2 unmarshals body into any with go-json-experiment/json,
// which rejects duplicate keys and invalid UTF-8 by default but turns
// every number into a float64 and has no nesting limit of ours.
func decodeJSONv2(body []byte) (map[string]any, error) {
	var tree map[string]any
	err := jsonv2.Unmarshal(body, &tree)
	return tree, err
}

// BenchmarkParseStrategies compares the guard's parser with two others
// on the Smart Invite example. TestParseStrategiesStrictness shows what
// each of them lets through.
func BenchmarkParseStrategies(b *testing.B) {
	invite, err := os.ReadFile("testdata/smart_invite.json")
	if err != nil {
		b.Fatal(err)
	}
	strategies := []struct {
		name  string
		parse func([]byte) (map[string]any, error)
	}{
		{"jsontext_token_loop", func(body []byte) (map[string]any, error) { return parseObject(body, DefaultMaxDepth) }},
		{"encoding_json_use_number", decodeStdlib},
		{"json_v2_unmarshal_any", decodeJSONv2},
	}
	for _, s := range strategies {
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(invite)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.parse(invite); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParseStrategiesStrictness(t *testing.T) {
	tests := []struct {
		name string
		body string
		// Whether each strategy rejects the body: the guard's parser,
		// encoding/json with UseNumber, go-json-experiment/json.
		guard, stdlib, v2 bool
	}{
		{"duplicate key", `{"a":1,"a":2}`, true, false, true},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", true, false, true},
		{"data after object", `{"a":1}{}`, true, true, true},
		{"trailing comma", `{"a":1,}`, true, true, true},
		{"nesting past max_depth", nestedObjects(DefaultMaxDepth + 1), true, false, false},
	}
	for _, tt := range tests {
		_, guardErr := parseObject([]byte(tt.body), DefaultMaxDepth)
		_, stdlibErr := decodeStdlib([]byte(tt.body))
		_, v2Err := decodeJSONv2([]byte(tt.body))
		if got := guardErr != nil; got != tt.guard {
			t.Errorf("%s: parseObject rejected = %t, want %t", tt.name, got, tt.guard)
		}
		if got := stdlibErr != nil; got != tt.stdlib {
			t.Errorf("%s: encoding/json rejected = %t, want %t", tt.name, got, tt.stdlib)
		}
		if got := v2Err != nil; got != tt.v2 {
			t.Errorf("%s: go-json-experiment/json rejected = %t, want %t", tt.name, got, tt.v2)
		}
	}
}
