package cronofy

import (
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func newTestStatusRecorder() *statusRecorder {
	return &statusRecorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: httptest.NewRecorder()}}
}

func TestURLTokenCheck(t *testing.T) {
	tests := []struct {
		name   string
		tokens []string
		query  string
		target string
		want   bool
	}{
		{"path segment", []string{"tok-1"}, "", "/cronofy/tok-1", true},
		{"path segment wrong", []string{"tok-1"}, "", "/cronofy/tok-2", false},
		{"path segment prefix only", []string{"tok-1"}, "", "/cronofy/tok-", false},
		{"path segment longer", []string{"tok-1"}, "", "/cronofy/tok-12", false},
		{"path trailing slash", []string{"tok-1"}, "", "/cronofy/tok-1/", true},
		{"path without token", []string{"tok-1"}, "", "/", false},
		{"second token during rotation", []string{"old", "new"}, "", "/cb/new", true},
		{"query parameter", []string{"tok-1"}, "token", "/cronofy?token=tok-1", true},
		{"query parameter wrong", []string{"tok-1"}, "token", "/cronofy?token=nope", false},
		{"query parameter missing", []string{"tok-1"}, "token", "/cronofy/tok-1", false},
		{"query parameter twice", []string{"tok-1"}, "token", "/cronofy?token=tok-1&token=tok-1", false},
		{"query parameter empty", []string{"tok-1"}, "token", "/cronofy?token=", false},
		{"query parameter escaped", []string{"a b/c"}, "token", "/cronofy?token=a%20b%2Fc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checker := newURLTokenChecker(tt.tokens, tt.query)
			r := httptest.NewRequest("POST", tt.target, nil)
			if got := checker.check(r); got != tt.want {
				t.Errorf("check(%s) with tokens %q and query %q = %v, want %v", tt.target, tt.tokens, tt.query, got, tt.want)
			}
		})
	}
}
