package cronofy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// vectorBody is the body of Cronofy's published signature examples.
var vectorBody = []byte(`{"example":"well-known"}`)

// publishedVectors are the client secrets and header elements published
// in Cronofy's documentation and in the tests of its official client
// libraries. Newer secrets start with CRN_, older ones do not.
var publishedVectors = []struct {
	secret string
	digest string
}{
	{"CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID", "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0="},
	{"CRN_nGlYDFXwfSXgB9rvGNBJyfE454GGPtWIbNuPwr", "BmQmWVuZ70ILWjr1CAt5oC7YOolgnku4WZtlrKfx/6k="},
	{"pDY0Oi7TJSP2hfNmZNkm5", "6r2/HjBkqymGegX0wOfifieeUXbbHwtV/LohHS+jv6c="},
	{"opposable thumbs", "38ArsN7+J/O8joGsgirVEdV16a/+eb+5QgHGIiuv4hk="},
	{"clientSecret", "QuGlxxssNDaxUjd6RY4wxGf+5KDrmobMmjkGQPtB3WQ="},
}

// Shorthands for the rotation tests. The first two vectors are the two
// secrets of Cronofy's rotation example, and the digest of the fourth
// contains both "+" and "/".
var (
	secretA = publishedVectors[0].secret
	digestA = publishedVectors[0].digest
	secretB = publishedVectors[1].secret
	digestB = publishedVectors[1].digest
	digestC = publishedVectors[3].digest
)

// verifyHeader parses the signature header values and verifies body with
// secrets. It returns the index of the matching secret, or the parse error.
func verifyHeader(secrets []string, body []byte, values []string) (int, error) {
	digests, err := parseSignature(nil, values, DefaultMaxDigests)
	if err != nil {
		return -1, err
	}
	return newVerifier(secrets).verify(body, digests), nil
}

func TestSignPublishedVectors(t *testing.T) {
	if len(vectorBody) != 24 {
		t.Fatalf("len(vectorBody) = %d, want 24", len(vectorBody))
	}

	for _, v := range publishedVectors {
		if got := sign([]byte(v.secret), vectorBody); got != v.digest {
			t.Errorf("sign(%q, %q) = %q, want %q", v.secret, vectorBody, got, v.digest)
		}
	}
}

func TestVerifyPublishedVectors(t *testing.T) {
	for _, v := range publishedVectors {
		digests, err := parseSignature(nil, []string{v.digest}, DefaultMaxDigests)
		if err != nil {
			t.Errorf("parseSignature(%q): got error %v, want nil", v.digest, err)
			continue
		}
		if got := newVerifier([]string{v.secret}).verify(vectorBody, digests); got != 0 {
			t.Errorf("verify with secret %q, header %q: got %d, want 0", v.secret, v.digest, got)
		}
	}
}

// TestVerifyRotationList covers the header forms a genuine request may
// take while several client secrets are active. Cronofy joins the digests
// with "," and no space, but proxies may fold or split header lines.
func TestVerifyRotationList(t *testing.T) {
	tests := []struct {
		name   string
		values []string
	}{
		{"single", []string{digestA}},
		{"good between malformed", []string{"wrong," + digestA + ",wrong-again"}},
		{"good second", []string{digestB + "," + digestA}},
		{"good first", []string{digestA + "," + digestB}},
		{"spaces around", []string{" " + digestB + " , " + digestA + " "}},
		{"tabs around", []string{"\t" + digestB + "\t,\t" + digestA + "\t"}},
		{"empty elements", []string{",," + digestA + ",,"}},
		{"two header lines", []string{digestB, digestA}},
		{"two header lines with malformed", []string{"wrong", "wrong-again," + digestA}},
		{"empty line beside good line", []string{"", digestA}},
	}
	for _, tt := range tests {
		got, err := verifyHeader([]string{secretA}, vectorBody, tt.values)
		if err != nil {
			t.Errorf("%s: header %q: got error %v, want nil", tt.name, tt.values, err)
			continue
		}
		if got != 0 {
			t.Errorf("%s: header %q: got index %d, want 0", tt.name, tt.values, got)
		}
	}
}

// TestParseSignatureErrors covers headers that must be rejected before the
// body is read.
func TestParseSignatureErrors(t *testing.T) {
	nine := strings.Repeat("wrong,", 8) + digestA
	tests := []struct {
		name   string
		values []string
		want   error
	}{
		{"missing header", nil, errNoSignature},
		{"empty header", []string{""}, errNoValidDigest},
		{"only separators and blanks", []string{" ,\t, ,"}, errNoValidDigest},
		{"only malformed", []string{"wrong,wrong-again"}, errNoValidDigest},
		{"malformed on two lines", []string{"wrong", "wrong-again"}, errNoValidDigest},
		{"more than max digests", []string{nine}, errTooManyDigests},
		{"more than max digests, good first", []string{digestA + "," + strings.Repeat("wrong,", 8)}, errTooManyDigests},
		{"more than max digests over two lines", []string{strings.Repeat("wrong,", 5), strings.Repeat("wrong,", 3) + digestA}, errTooManyDigests},
	}
	for _, tt := range tests {
		_, err := parseSignature(nil, tt.values, DefaultMaxDigests)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: parseSignature(%q): got error %v, want %v", tt.name, tt.values, err, tt.want)
		}
	}
}

// TestParseSignatureMaxDigests checks that the limit counts non-empty
// elements only and that exactly maxDigests of them pass.
func TestParseSignatureMaxDigests(t *testing.T) {
	tests := []struct {
		name   string
		values []string
	}{
		{"exactly max digests", []string{strings.Repeat("wrong,", 7) + digestA}},
		{"empty elements not counted", []string{strings.Repeat("wrong,,", 7) + ", ," + digestA}},
	}
	for _, tt := range tests {
		got, err := verifyHeader([]string{secretA}, vectorBody, tt.values)
		if err != nil {
			t.Errorf("%s: header %q: got error %v, want nil", tt.name, tt.values, err)
			continue
		}
		if got != 0 {
			t.Errorf("%s: header %q: got index %d, want 0", tt.name, tt.values, got)
		}
	}
}

// TestVerifyNonCanonicalForms checks that the digest of the right secret,
// spelled in any form other than padded standard Base64, never matches.
// Lenient decoders accept several of these forms, which would give one
// digest several spellings.
func TestVerifyNonCanonicalForms(t *testing.T) {
	raw := hmacSHA256(publishedVectors[3].secret, vectorBody)
	good := publishedVectors[3].digest

	tests := []struct {
		name    string
		element string
	}{
		{"base64url", base64.URLEncoding.EncodeToString(raw)},
		{"unpadded", base64.RawStdEncoding.EncodeToString(raw)},
		{"unpadded base64url", base64.RawURLEncoding.EncodeToString(raw)},
		{"hex", hex.EncodeToString(raw)},
		{"upper-case hex", strings.ToUpper(hex.EncodeToString(raw))},
		{"base64 of hex text", base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(raw)))},
		{"non-zero unused bits", withNonZeroUnusedBits(t, good)},
		{"embedded CRLF", good[:20] + "\r\n" + good[20:]},
		{"embedded LF", good[:20] + "\n" + good[20:]},
		{"trailing LF", good + "\n"},
		{"trailing CR", good + "\r"},
		{"43 chars, first dropped", good[1:]},
		{"45 chars, extra padding", good + "="},
		{"45 chars, extra leading char", "A" + good},
		{"padding moved to front", "=" + good[:43]},
	}
	for _, tt := range tests {
		if tt.element == good {
			t.Fatalf("%s: element %q is the canonical digest, the case tests nothing", tt.name, tt.element)
		}

		values := []string{tt.element}
		got, err := verifyHeader([]string{publishedVectors[3].secret}, vectorBody, values)
		if !errors.Is(err, errNoValidDigest) {
			t.Errorf("%s: header %q: got index %d, error %v, want error %v", tt.name, values, got, err, errNoValidDigest)
		}
	}
}

// TestVerifySecretIndex checks that the index of the first configured
// secret with a matching digest is returned, whatever the header order.
func TestVerifySecretIndex(t *testing.T) {
	secrets := []string{secretA, secretB}
	tests := []struct {
		name   string
		values []string
		want   int
	}{
		{"only second secret", []string{digestB}, 1},
		{"only first secret", []string{digestA}, 0},
		{"both secrets", []string{digestA + "," + digestB}, 0},
		{"both secrets, reversed", []string{digestB + "," + digestA}, 0},
		{"neither secret", []string{digestC}, -1},
	}
	for _, tt := range tests {
		got, err := verifyHeader(secrets, vectorBody, tt.values)
		if err != nil {
			t.Errorf("%s: header %q: got error %v, want nil", tt.name, tt.values, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: header %q: got index %d, want %d", tt.name, tt.values, got, tt.want)
		}
	}
}

// TestVerifyReusesState checks that pooled HMAC states are reset between
// requests, so one body's digest never leaks into the next.
func TestVerifyReusesState(t *testing.T) {
	v := newVerifier([]string{secretA})
	other := []byte(`{"example":"other"}`)
	otherDigest := sign([]byte(secretA), other)

	tests := []struct {
		body    []byte
		element string
		want    int
	}{
		{vectorBody, digestA, 0},
		{other, otherDigest, 0},
		{vectorBody, otherDigest, -1},
		{other, digestA, -1},
		{vectorBody, digestA, 0},
	}
	for i, tt := range tests {
		digests, err := parseSignature(nil, []string{tt.element}, DefaultMaxDigests)
		if err != nil {
			t.Fatalf("call %d: parseSignature(%q): %v", i, tt.element, err)
		}
		if got := v.verify(tt.body, digests); got != tt.want {
			t.Errorf("call %d: verify(%q, %q): got %d, want %d", i, tt.body, tt.element, got, tt.want)
		}
	}
}

// TestVerifyAlteredBody checks that a one-byte change of the body, such as
// the re-serialization of an escape, makes the digest fail.
func TestVerifyAlteredBody(t *testing.T) {
	bodies := [][]byte{
		[]byte(`{"example":"well-known"}` + "\n"),
		[]byte(`{"example": "well-known"}`),
		[]byte(`{"example":"well-know\u006e"}`),
		[]byte(`{"example":"well-knowN"}`),
		[]byte{},
	}
	for _, body := range bodies {
		got, err := verifyHeader([]string{secretA}, body, []string{digestA})
		if err != nil {
			t.Errorf("body %q: got error %v, want nil", body, err)
			continue
		}
		if got != -1 {
			t.Errorf("body %q: got index %d, want -1", body, got)
		}
	}
}

func hmacSHA256(secret string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return mac.Sum(nil)
}

// withNonZeroUnusedBits returns element with its last Base64 character
// changed so that it decodes to the same bytes under a lenient decoder.
// The 43rd character carries 6 bits, and only its top 4 are digest data.
func withNonZeroUnusedBits(t *testing.T, element string) string {
	t.Helper()

	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, element[42])
	changed := element[:42] + string(alphabet[last|1]) + "="

	want, err := base64.StdEncoding.DecodeString(element)
	if err != nil {
		t.Fatalf("decode %q: %v", element, err)
	}
	got, err := base64.StdEncoding.DecodeString(changed)
	if err != nil || string(got) != string(want) {
		t.Fatalf("lenient decode of %q = %x, %v; want %x, nil", changed, got, err, want)
	}
	return changed
}
