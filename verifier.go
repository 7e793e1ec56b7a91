package cronofy

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"sync"
)

// SignatureHeader is the request header in which Cronofy sends the
// Base64-encoded HMAC-SHA256 digests of the request body.
const SignatureHeader = "Cronofy-HMAC-SHA256"

// encodedDigestLen is the length of a SHA-256 digest in padded standard
// Base64: 32 bytes become 43 characters and one "=".
const encodedDigestLen = 44

var (
	errNoSignature       = errors.New("missing " + SignatureHeader + " header")
	errNoValidDigest     = errors.New(SignatureHeader + " header contains no well-formed digest")
	errTooManyDigests    = errors.New(SignatureHeader + " header contains too many digests")
	errSignatureMismatch = errors.New("no digest matches any configured client secret")
)

// digest is one decoded element of the signature header.
type digest [sha256.Size]byte

// parseSignature collects the digests of every signature header line.
// Cronofy joins one digest per active client secret with commas, and
// separate header lines are treated as one comma-joined list (RFC 9110,
// section 5.3). Elements are trimmed of spaces and tabs, empty ones are
// skipped, and an element that is not in canonical form is ignored, so a
// stray value next to a good digest cannot make a genuine request fail.
// More than maxDigests non-empty elements is an error, which bounds the
// work an attacker can cause per request. The digests are appended to dst.
func parseSignature(dst []digest, values []string, maxDigests int) ([]digest, error) {
	if len(values) == 0 {
		return dst, errNoSignature
	}

	elements := 0
	for _, line := range values {
		for len(line) > 0 {
			var element string
			element, line, _ = strings.Cut(line, ",")
			element = strings.Trim(element, " \t")
			if element == "" {
				continue
			}

			elements++
			if elements > maxDigests {
				return dst, errTooManyDigests
			}

			if d, ok := decodeDigest(element); ok {
				dst = append(dst, d)
			}
		}
	}

	if len(dst) == 0 {
		return dst, errNoValidDigest
	}
	return dst, nil
}

// decodeDigest decodes element only if it is a digest in the one encoding
// Cronofy uses: 44 characters of standard Base64 with "=" padding.
// Base64url, unpadded and hex forms, line breaks inside the element and a
// final character with non-zero unused bits are all rejected, so exactly
// one spelling of each digest matches.
func decodeDigest(element string) (digest, bool) {
	var d digest
	if len(element) != encodedDigestLen || element[encodedDigestLen-1] != '=' {
		return d, false
	}

	for i := 0; i < encodedDigestLen-1; i++ {
		if !isStdBase64(element[i]) {
			return d, false
		}
	}

	n, err := base64.StdEncoding.Strict().Decode(d[:], []byte(element))
	if err != nil || n != len(d) {
		return d, false
	}
	return d, true
}

func isStdBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// verifier computes the body digest of each configured client secret and
// compares it with the digests of a request.
type verifier struct {
	// pools holds one pool of keyed HMAC states per client secret, so
	// the key schedule is paid once per pooled state, not per request.
	pools []*sync.Pool
}

// macState is a keyed HMAC with room for its sum. The sum lives beside
// the hash because a buffer passed to hash.Hash.Sum escapes to the heap.
type macState struct {
	mac hash.Hash
	sum digest
}

// newVerifier returns a verifier for secrets, which are used as raw bytes.
func newVerifier(secrets []string) *verifier {
	v := &verifier{pools: make([]*sync.Pool, len(secrets))}
	for i, secret := range secrets {
		key := []byte(secret)
		v.pools[i] = &sync.Pool{New: func() any { return &macState{mac: hmac.New(sha256.New, key)} }}
	}
	return v
}

// verify returns the index of the first client secret whose digest of body
// equals one of digests, or -1 when none does. Each secret's digest is
// computed once, and every pair is compared in constant time without
// leaving the loop early, so the time taken does not reveal which element
// or secret came close.
func (v *verifier) verify(body []byte, digests []digest) int {
	matched := -1
	for i, pool := range v.pools {
		state := pool.Get().(*macState)
		state.mac.Reset()
		state.mac.Write(body)
		state.mac.Sum(state.sum[:0])

		found := 0
		for j := range digests {
			found |= subtle.ConstantTimeCompare(state.sum[:], digests[j][:])
		}
		pool.Put(state)
		// Keep the first match without a data-dependent branch.
		take := found & subtle.ConstantTimeEq(int32(matched), -1)
		matched = subtle.ConstantTimeSelect(take, i, matched)
	}
	return matched
}

// sign returns the signature header element for body under secret, as
// Cronofy computes it.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
