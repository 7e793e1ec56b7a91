package cronofy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{
			name: "full config",
			input: `cronofy_callback {
				secret {env.CRONOFY_CLIENT_SECRET}
				max_body_size 64KiB
				unknown_types reject
				max_depth 12
				max_digests 3
				log_emails
			}`,
			want: Handler{
				Secrets:      []string{"{env.CRONOFY_CLIENT_SECRET}"},
				MaxBodySize:  64 << 10,
				UnknownTypes: UnknownTypesReject,
				MaxDepth:     12,
				MaxDigests:   3,
				LogEmails:    true,
			},
		},
		{
			name: "repeated secret keeps order",
			input: `cronofy_callback {
				secret old-secret
				secret "new secret"
				secret {file./run/secrets/cronofy}
			}`,
			want: Handler{Secrets: []string{"old-secret", "new secret", "{file./run/secrets/cronofy}"}},
		},
		{
			name:  "secret only",
			input: "cronofy_callback {\n secret s \n}",
			want:  Handler{Secrets: []string{"s"}},
		},
		{
			name:  "max_body_size in bytes",
			input: "cronofy_callback {\n secret s\n max_body_size 1024\n}",
			want:  Handler{Secrets: []string{"s"}, MaxBodySize: 1024},
		},
		{
			name:  "max_body_size in decimal units",
			input: "cronofy_callback {\n secret s\n max_body_size 1MB\n}",
			want:  Handler{Secrets: []string{"s"}, MaxBodySize: 1000000},
		},
		{
			name:  "max_body_size just under 2GiB",
			input: "cronofy_callback {\n secret s\n max_body_size 2147483647\n}",
			want:  Handler{Secrets: []string{"s"}, MaxBodySize: 2<<30 - 1},
		},
		{
			name:  "unknown_types pass",
			input: "cronofy_callback {\n secret s\n unknown_types pass\n}",
			want:  Handler{Secrets: []string{"s"}, UnknownTypes: UnknownTypesPass},
		},
		{
			name:  "unknown_types reject",
			input: "cronofy_callback {\n secret s\n unknown_types reject\n}",
			want:  Handler{Secrets: []string{"s"}, UnknownTypes: UnknownTypesReject},
		},
		{
			name:  "max_depth",
			input: "cronofy_callback {\n secret s\n max_depth 1\n}",
			want:  Handler{Secrets: []string{"s"}, MaxDepth: 1},
		},
		{
			name:  "max_digests",
			input: "cronofy_callback {\n secret s\n max_digests 16\n}",
			want:  Handler{Secrets: []string{"s"}, MaxDigests: 16},
		},
		{
			name:  "log_emails",
			input: "cronofy_callback {\n secret s\n log_emails\n}",
			want:  Handler{Secrets: []string{"s"}, LogEmails: true},
		},
	}
	for _, tt := range tests {
		var got Handler
		if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
			t.Errorf("%s: UnmarshalCaddyfile(%q): got error %v, want nil", tt.name, tt.input, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: UnmarshalCaddyfile(%q) = %+v, want %+v", tt.name, tt.input, got, tt.want)
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // substring of the error message
	}{
		{"unknown subdirective", "cronofy_callback {\n secret s\n secrets s\n}", `unrecognized subdirective "secrets"`},
		{"duplicate max_body_size", "cronofy_callback {\n secret s\n max_body_size 1KiB\n max_body_size 2KiB\n}", `duplicate subdirective "max_body_size"`},
		{"duplicate unknown_types", "cronofy_callback {\n secret s\n unknown_types pass\n unknown_types pass\n}", `duplicate subdirective "unknown_types"`},
		{"duplicate max_depth", "cronofy_callback {\n secret s\n max_depth 4\n max_depth 4\n}", `duplicate subdirective "max_depth"`},
		{"duplicate max_digests", "cronofy_callback {\n secret s\n max_digests 4\n max_digests 4\n}", `duplicate subdirective "max_digests"`},
		{"duplicate log_emails", "cronofy_callback {\n secret s\n log_emails\n log_emails\n}", `duplicate subdirective "log_emails"`},
		{"argument on directive", "cronofy_callback s {\n secret s\n}", "wrong argument count"},
		{"secret without argument", "cronofy_callback {\n secret\n}", "wrong argument count"},
		{"secret with two arguments", "cronofy_callback {\n secret a b\n}", "wrong argument count"},
		{"max_body_size without argument", "cronofy_callback {\n secret s\n max_body_size\n}", "wrong argument count"},
		{"max_body_size with two arguments", "cronofy_callback {\n secret s\n max_body_size 1 KiB\n}", "wrong argument count"},
		{"unknown_types without argument", "cronofy_callback {\n secret s\n unknown_types\n}", "wrong argument count"},
		{"max_depth without argument", "cronofy_callback {\n secret s\n max_depth\n}", "wrong argument count"},
		{"max_digests with two arguments", "cronofy_callback {\n secret s\n max_digests 1 2\n}", "wrong argument count"},
		{"log_emails with argument", "cronofy_callback {\n secret s\n log_emails yes\n}", "wrong argument count"},
		{"max_body_size not a size", "cronofy_callback {\n secret s\n max_body_size lots\n}", `invalid max_body_size "lots"`},
		{"max_body_size zero", "cronofy_callback {\n secret s\n max_body_size 0\n}", `invalid max_body_size "0"`},
		{"max_body_size negative", "cronofy_callback {\n secret s\n max_body_size -1\n}", `invalid max_body_size "-1"`},
		{"max_body_size of 2GiB", "cronofy_callback {\n secret s\n max_body_size 2GiB\n}", `invalid max_body_size "2GiB": want a size such as 256KiB, at least 1 byte and less than 2GiB`},
		{"max_body_size over 2GiB", "cronofy_callback {\n secret s\n max_body_size 3GiB\n}", `invalid max_body_size "3GiB"`},
		{"unknown_types maybe", "cronofy_callback {\n secret s\n unknown_types maybe\n}", `invalid unknown_types "maybe"`},
		{"unknown_types upper case", "cronofy_callback {\n secret s\n unknown_types PASS\n}", `invalid unknown_types "PASS"`},
		{"max_depth zero", "cronofy_callback {\n secret s\n max_depth 0\n}", `invalid max_depth "0"`},
		{"max_depth negative", "cronofy_callback {\n secret s\n max_depth -3\n}", `invalid max_depth "-3"`},
		{"max_depth not a number", "cronofy_callback {\n secret s\n max_depth deep\n}", `invalid max_depth "deep"`},
		{"max_digests zero", "cronofy_callback {\n secret s\n max_digests 0\n}", `invalid max_digests "0"`},
		{"no secret", "cronofy_callback {\n max_depth 4\n}", "needs at least one secret"},
		{"no block", "cronofy_callback", "needs at least one secret"},
		{"empty block", "cronofy_callback {\n}", "needs at least one secret"},
	}
	for _, tt := range tests {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
		if err == nil {
			t.Errorf("%s: UnmarshalCaddyfile(%q): got nil error, want %q", tt.name, tt.input, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: UnmarshalCaddyfile(%q): got error %q, want it to contain %q", tt.name, tt.input, err, tt.want)
		}
	}
}

// TestCaddyfileAdapt compares the JSON that the Caddyfile adapter produces
// from each testdata/caddyfile_adapt/*.caddyfiletest file with the JSON
// after the file's "----------" line.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/caddyfile_adapt/*.caddyfiletest files")
	}

	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}

		caddyfileText, expected, found := strings.Cut(string(data), "----------")
		if !found {
			t.Errorf("%s: no ---------- line between the Caddyfile and the JSON", file)
			continue
		}

		// The adapter expects a final newline, as a formatted Caddyfile has.
		caddyfileText = strings.TrimSpace(caddyfileText) + "\n"
		expected = strings.TrimSpace(expected)
		if !caddytest.CompareAdapt(t, file, caddyfileText, "caddyfile", expected) {
			t.Errorf("%s: adapted JSON differs from the expected JSON (diff printed above)", file)
		}
	}
}
