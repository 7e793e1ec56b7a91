package cronofy

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"path"
)

var errURLToken = errors.New("missing or wrong URL token")

// urlTokenChecker compares the secret token in a callback URL with the
// configured ones. Cronofy suggests putting such a token in each
// callback_url as a second factor next to the signature. It is checked
// before anything else about the request, so a flood of requests without
// it costs no body read and no HMAC.
type urlTokenChecker struct {
	// digests holds the SHA-256 of each accepted token. Comparing digests
	// of equal length keeps the comparison constant-time whatever the
	// length of the presented token.
	digests [][sha256.Size]byte
	// query is the query parameter that carries the token, or "" when the
	// token is the last segment of the path.
	query string
}

func newURLTokenChecker(tokens []string, query string) *urlTokenChecker {
	c := &urlTokenChecker{query: query}
	for _, token := range tokens {
		c.digests = append(c.digests, sha256.Sum256([]byte(token)))
	}
	return c
}

// check reports whether r carries one of the accepted tokens. Every
// configured token is compared, so the time taken does not reveal which
// one came close.
func (c *urlTokenChecker) check(r *http.Request) bool {
	var presented string
	if c.query != "" {
		values := r.URL.Query()[c.query]
		if len(values) != 1 {
			return false
		}
		presented = values[0]
	} else {
		presented = path.Base(r.URL.Path)
	}
	if presented == "" || presented == "/" || presented == "." {
		return false
	}

	sum := sha256.Sum256([]byte(presented))
	match := 0
	for i := range c.digests {
		match |= subtle.ConstantTimeCompare(sum[:], c.digests[i][:])
	}
	return match == 1
}
