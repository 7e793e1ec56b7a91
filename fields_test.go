package cronofy

import (
	"net/http"
	"net/url"
	"testing"
)

func TestEncodeHeaderValue(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", ""},
		{"example@example.com", "example@example.com"},
		{"zoë@example.test", "zo%C3%AB@example.test"},
		{"100%", "100%25"},
		{"%C3%AB", "%25C3%25AB"},
		{"a\tb", "a%09b"},
		{"a\rb", "a%0Db"},
		{"a\nb", "a%0Ab"},
		{"a\r\nX-Injected: 1", "a%0D%0AX-Injected: 1"},
		{"a\x00b", "a%00b"},
		{"a\x7fb", "a%7Fb"},
		{"a\x1fb", "a%1Fb"},
		{"\xff", "%FF"},
		{"日本", "%E6%97%A5%E6%9C%AC"},
		{"with space", "with space"},
		{" !\"#$&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~", " !\"#$&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~"},
	}
	for _, tt := range tests {
		if got := encodeHeaderValue(tt.in); got != tt.want {
			t.Errorf("encodeHeaderValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestEncodeHeaderValueRoundTrip checks that a standard percent-decoder
// restores the original text, as encodeHeaderValue documents.
func TestEncodeHeaderValueRoundTrip(t *testing.T) {
	inputs := []string{"zoë@example.test", "100% + 1", "a\r\nb\tc", "日本 語", "a+b@example.com"}
	for _, in := range inputs {
		encoded := encodeHeaderValue(in)
		got, err := url.PathUnescape(encoded)
		if err != nil {
			t.Errorf("url.PathUnescape(%q) for input %q: %v", encoded, in, err)
			continue
		}
		if got != in {
			t.Errorf("url.PathUnescape(encodeHeaderValue(%q)) = %q, want %q", in, got, in)
		}
	}
}

func TestIsOwnedHeader(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"X-Cronofy-Foo", true},
		{"x-cronofy-foo", true},
		{"X-CRONOFY-FOO", true},
		{"X_Cronofy_Foo", true},
		{"x_cronofy-foo", true},
		{"X-Cronofy_Foo", true},
		{"X-CRONOFY-", true},
		{"X-Cronofy-Notification-Type", true},
		{"X-Cronofyx", false},
		{"X-Cronofy", false},
		{"X-Cronofy.Foo", true},
		{"Cronofy-HMAC-SHA256", false},
		{"X-Other", false},
		{"X-Forwarded-For", false},
		{"Y-Cronofy-Foo", false},
		{"XX-Cronofy-Foo", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isOwnedHeader(tt.name); got != tt.want {
			t.Errorf("isOwnedHeader(%q) = %t, want %t", tt.name, got, tt.want)
		}
	}
}

// TestStripOwnedHeaders checks names set directly in the map, without
// canonicalization, as a request parsed from HTTP/2 or built by another
// handler may carry them.
func TestStripOwnedHeaders(t *testing.T) {
	removed := []string{"X-Cronofy-Foo", "x-cronofy-foo", "X_Cronofy_Foo", "X-CRONOFY-", "X-Cronofy-Smart-Invite-Id"}
	kept := []string{"X-Cronofyx", "Cronofy-HMAC-SHA256", "X-Other", "Content-Type"}

	header := make(http.Header)
	for _, name := range append(append([]string{}, removed...), kept...) {
		header[name] = []string{"value of " + name}
	}

	stripOwnedHeaders(header)

	for _, name := range removed {
		if values, ok := header[name]; ok {
			t.Errorf("header %q after stripOwnedHeaders = %q, want removed", name, values)
		}
	}
	for _, name := range kept {
		if got, want := header[name], []string{"value of " + name}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("header %q after stripOwnedHeaders = %q, want %q", name, got, want)
		}
	}
}
