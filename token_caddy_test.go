package cronofy

import (
	"net/http"
	"testing"
)

// URL tokens of the tests. The second one stands for the new token while
// a token change is under way.
const (
	firstURLToken  = "tok-e2e-7Qh2Lx9Vw4Rz"
	secondURLToken = "tok-e2e-Pm3Ks8Dn1Bf6"
)

func TestCaddyURLToken(t *testing.T) {
	body := []byte(smartInviteBody)
	tokens := []string{"secret " + firstSecret, "url_token " + firstURLToken, "url_token " + secondURLToken}

	forms := []struct {
		name    string
		options []string
		cases   []struct {
			path   string
			status int
		}
	}{
		{
			name:    "last path segment",
			options: tokens,
			cases: []struct {
				path   string
				status int
			}{
				{path: "/cronofy/" + firstURLToken, status: http.StatusOK},
				{path: "/cronofy/" + secondURLToken, status: http.StatusOK},
				{path: "/cronofy/" + firstURLToken + "x", status: http.StatusUnauthorized},
				{path: "/cronofy/", status: http.StatusUnauthorized},
				{path: "/cronofy/" + firstURLToken + "/extra", status: http.StatusUnauthorized},
				{path: "/cronofy?token=" + firstURLToken, status: http.StatusUnauthorized},
			},
		},
		{
			name:    "query parameter",
			options: append(tokens, "url_token_query token"),
			cases: []struct {
				path   string
				status int
			}{
				{path: "/cronofy?token=" + firstURLToken, status: http.StatusOK},
				{path: "/cronofy?token=" + secondURLToken, status: http.StatusOK},
				{path: "/cronofy?token=wrong", status: http.StatusUnauthorized},
				{path: "/cronofy", status: http.StatusUnauthorized},
				{path: "/cronofy/" + firstURLToken, status: http.StatusUnauthorized},
				// Two values could be read differently by two parsers.
				{path: "/cronofy?token=" + firstURLToken + "&token=" + firstURLToken, status: http.StatusUnauthorized},
			},
		},
	}

	for _, form := range forms {
		t.Run(form.name, func(t *testing.T) {
			upstream := newRecordingUpstream(t)
			server := startCaddy(t, guardSite(upstream, form.options...))

			for _, tc := range form.cases {
				before := len(upstream.received())
				c := signed(firstSecret, body)
				c.path = tc.path
				resp, reply := server.send(t, c)
				if resp.StatusCode != tc.status {
					t.Errorf("%v: got %d %q, want %d", c, resp.StatusCode, reply, tc.status)
				}
				want := 0
				if tc.status == http.StatusOK {
					want = 1
				}
				if n := len(upstream.received()) - before; n != want {
					t.Errorf("%v: upstream received %d requests, want %d", c, n, want)
				}
			}

			// The token is a second factor, not a replacement for the
			// signature.
			unsigned := callback{body: body, path: form.cases[0].path}
			if resp, reply := server.send(t, unsigned); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%v: got %d %q, want 401", unsigned, resp.StatusCode, reply)
			}

			// A request without the token is rejected before its body is
			// read: Caddy would send 100 Continue first if the guard read
			// it. sendHead posts to callbackPath, which has no token.
			_, reader := server.sendHead(t, len(body), "Content-Type: application/json", signatureLine(firstSecret, body))
			resp, err := http.ReadResponse(reader, nil)
			if err != nil {
				t.Fatalf("reading the response before sending the body: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("request without the token: got status %d before the body was sent, want 401", resp.StatusCode)
			}
		})
	}
}
