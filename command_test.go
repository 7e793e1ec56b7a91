package cronofy

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// The published Cronofy test vectors: the body and two client secrets of
// a rotation with the digest of each.
const (
	vectorBodyText = `{"example":"well-known"}`
	vectorSecret0  = "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID"
	vectorDigest0  = "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0="
	vectorSecret1  = "CRN_nGlYDFXwfSXgB9rvGNBJyfE454GGPtWIbNuPwr"
	vectorDigest1  = "BmQmWVuZ70ILWjr1CAt5oC7YOolgnku4WZtlrKfx/6k="
)

// commandRun is the result of one in-process run of the command.
type commandRun struct {
	stdout, stderr string
	err            error
}

// runCallbackCommand runs "caddy cronofy-callback args..." in the test
// process, on a command tree built the way Caddy builds its own.
func runCallbackCommand(t *testing.T, args ...string) commandRun {
	t.Helper()

	registered, ok := caddycmd.Commands()["cronofy-callback"]
	if !ok {
		t.Fatal("cronofy-callback is not registered with caddycmd")
	}
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	cmd := &cobra.Command{Use: registered.Name, Short: registered.Short}
	registered.CobraFunc(cmd)
	root.AddCommand(cmd)

	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"cronofy-callback"}, args...))
	err := root.Execute()
	return commandRun{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// assertNoSecret fails the test if a secret appears in any output of run.
func assertNoSecret(t *testing.T, run commandRun, secrets ...string) {
	t.Helper()
	outputs := map[string]string{"stdout": run.stdout, "stderr": run.stderr}
	if run.err != nil {
		outputs["error"] = run.err.Error()
	}
	for source, text := range outputs {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a client secret: %q", source, text)
			}
		}
	}
}

// writeTestFile writes data to a new file in a temporary directory and
// returns its path.
func writeTestFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCommandSignVectors(t *testing.T) {
	body := writeTestFile(t, "body.json", []byte(vectorBodyText))

	run := runCallbackCommand(t, "sign", "--secret", vectorSecret0, "--secret", vectorSecret1, body)
	if run.err != nil {
		t.Fatalf("sign: %v\nstderr: %s", run.err, run.stderr)
	}
	if want := vectorDigest0 + "," + vectorDigest1 + "\n"; run.stdout != want {
		t.Errorf("sign: got %q, want %q", run.stdout, want)
	}
	assertNoSecret(t, run, vectorSecret0, vectorSecret1)
}

func TestCommandSignStdin(t *testing.T) {
	registered := caddycmd.Commands()["cronofy-callback"]
	cmd := &cobra.Command{Use: registered.Name}
	registered.CobraFunc(cmd)
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetIn(strings.NewReader(vectorBodyText))
	cmd.SetArgs([]string{"sign", "--secret", vectorSecret1, "-"})

	if err := cmd.Execute(); err != nil {
		t.Fatalf("sign -: %v", err)
	}
	if want := vectorDigest1 + "\n"; stdout.String() != want {
		t.Errorf("sign -: got %q, want %q", stdout.String(), want)
	}
}

func TestCommandSecretSources(t *testing.T) {
	body := writeTestFile(t, "body.json", []byte(vectorBodyText))
	// A file's final newline is trimmed, as the handler trims secrets.
	file := writeTestFile(t, "secret", []byte(vectorSecret1+"\n"))
	t.Setenv("CRONOFY_TEST_SECRET", vectorSecret0)

	// Indexes follow the command line across the three flags.
	run := runCallbackCommand(t, "sign", "--secret-file", file, "--secret-env", "CRONOFY_TEST_SECRET", "--secret", vectorSecret1, body)
	if run.err != nil {
		t.Fatalf("sign: %v\nstderr: %s", run.err, run.stderr)
	}
	if want := vectorDigest1 + "," + vectorDigest0 + "," + vectorDigest1 + "\n"; run.stdout != want {
		t.Errorf("sign: got %q, want %q", run.stdout, want)
	}
	if want := "warning: trimmed surrounding whitespace from secret 0\n"; run.stderr != want {
		t.Errorf("sign: got stderr %q, want %q", run.stderr, want)
	}
	assertNoSecret(t, run, vectorSecret0, vectorSecret1)
}

func TestCommandSecretErrors(t *testing.T) {
	body := writeTestFile(t, "body.json", []byte(vectorBodyText))
	missing := filepath.Join(t.TempDir(), "missing")
	blank := writeTestFile(t, "blank", []byte(" \n"))
	t.Setenv("CRONOFY_TEST_EMPTY", "")
	os.Unsetenv("CRONOFY_TEST_UNSET")

	tests := []struct {
		name      string
		args      []string
		wantError string
	}{
		{"no secret", []string{"sign", body}, "no client secret given"},
		{"unset variable", []string{"sign", "--secret", vectorSecret0, "--secret-env", "CRONOFY_TEST_UNSET", body}, "secret 1: environment variable CRONOFY_TEST_UNSET given with --secret-env is not set"},
		{"empty variable", []string{"sign", "--secret-env", "CRONOFY_TEST_EMPTY", body}, "secret 0: client secret from --secret-env is empty"},
		{"missing file", []string{"sign", "--secret-file", missing, body}, "secret 0: reading --secret-file: open " + missing},
		{"blank file", []string{"sign", "--secret-file", blank, body}, "secret 0: client secret from --secret-file is empty"},
		{"missing body", []string{"sign", "--secret", vectorSecret0, missing}, "reading the body file: open " + missing},
		{"send without URL", []string{"send", "--secret", vectorSecret0, body}, "accepts 2 arg(s), received 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := runCallbackCommand(t, tt.args...)
			if run.err == nil {
				t.Fatalf("%v: succeeded with %q, want error %q", tt.args, run.stdout, tt.wantError)
			}
			if !strings.Contains(run.err.Error(), tt.wantError) {
				t.Errorf("%v: got error %q, want it to contain %q", tt.args, run.err, tt.wantError)
			}
			if run.stdout != "" {
				t.Errorf("%v: got stdout %q, want none", tt.args, run.stdout)
			}
			assertNoSecret(t, run, vectorSecret0)
		})
	}
}

func TestCommandVerify(t *testing.T) {
	smartInvite := readCallbackFile(t, "testdata/smart_invite.json")
	badStatus := []byte(strings.Replace(string(smartInvite), `"tentative"`, `"maybe"`, 1))
	secrets := []string{"--secret", vectorSecret0, "--secret", vectorSecret1}
	rotation := sign([]byte(vectorSecret0), smartInvite) + "," + sign([]byte(vectorSecret1), smartInvite)
	newOnly := sign([]byte(vectorSecret1), smartInvite)
	trailingComma := []byte(`{"notification":{"type":"change"},}`)
	_, jsonErr := parseObject(trailingComma, DefaultMaxDepth)
	if jsonErr == nil {
		t.Fatalf("parseObject(%s) succeeded, want an error", trailingComma)
	}

	tests := []struct {
		name      string
		body      []byte
		args      []string
		wantLines []string
	}{
		{
			"rotation list", smartInvite, []string{"--signature", rotation},
			[]string{"result: accepted", "secret_index: 0", "notification_type: smart_invite"},
		},
		{
			"new secret only", smartInvite, []string{"--signature", "wrong, " + newOnly},
			[]string{"result: accepted", "secret_index: 1", "notification_type: smart_invite"},
		},
		{
			"two header lines", smartInvite, []string{"--signature", "junk", "--signature", newOnly},
			[]string{"result: accepted", "secret_index: 1", "notification_type: smart_invite"},
		},
		{
			"no signature", smartInvite, nil,
			[]string{"result: rejected", "status: 401", "outcome: missing_signature", "reason: missing Cronofy-HMAC-SHA256 header"},
		},
		{
			"malformed header", smartInvite, []string{"--signature", strings.TrimSuffix(newOnly, "=")},
			[]string{"result: rejected", "status: 401", "outcome: malformed_signature", "reason: Cronofy-HMAC-SHA256 header contains no well-formed digest"},
		},
		{
			"too many digests", smartInvite, []string{"--max-digests", "1", "--signature", rotation},
			[]string{"result: rejected", "status: 401", "outcome: too_many_digests", "reason: Cronofy-HMAC-SHA256 header contains too many digests"},
		},
		{
			"no match", smartInvite, []string{"--signature", sign([]byte("another secret"), smartInvite)},
			[]string{"result: rejected", "status: 401", "outcome: signature_mismatch", "reason: no digest matches any configured client secret"},
		},
		{
			"too large", smartInvite, []string{"--max-body-size", "100B", "--signature", newOnly},
			[]string{"result: rejected", "status: 413", "outcome: body_too_large", "reason: request body exceeds max_body_size"},
		},
		{
			"invalid JSON", trailingComma, []string{"--signature", sign([]byte(vectorSecret1), trailingComma)},
			[]string{"result: rejected", "status: 400", "outcome: invalid_json", "reason: " + jsonErr.Error(), "secret_index: 1"},
		},
		{
			"schema failure", badStatus, []string{"--signature", sign([]byte(vectorSecret0), badStatus)},
			[]string{"result: rejected", "status: 422", "outcome: schema_violation", `reason: smart_invite schema: /smart_invite/recipient/status: fails "enum"`, "secret_index: 0", "notification_type: smart_invite"},
		},
		{
			"unknown type rejected", []byte(`{"notification":{"type":"widget_created"}}`), []string{"--unknown-types", "reject", "--signature", sign([]byte(vectorSecret0), []byte(`{"notification":{"type":"widget_created"}}`))},
			[]string{"result: rejected", "status: 422", "outcome: unknown_notification_type", "reason: unknown notification type rejected by unknown_types reject", "secret_index: 0", "notification_type: widget_created"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := writeTestFile(t, "body.json", tt.body)
			args := append(append(append([]string{"verify"}, secrets...), tt.args...), body)
			run := runCallbackCommand(t, args...)

			wantAccepted := tt.wantLines[0] == "result: accepted"
			if wantAccepted && run.err != nil {
				t.Errorf("got error %v, want success", run.err)
			}
			if !wantAccepted && run.err != errCallbackRejected {
				t.Errorf("got error %v, want errCallbackRejected", run.err)
			}
			if want := strings.Join(tt.wantLines, "\n") + "\n"; run.stdout != want {
				t.Errorf("got output\n%s\nwant\n%s", run.stdout, want)
			}
			if run.stderr != "" {
				t.Errorf("got stderr %q, want none", run.stderr)
			}
			assertNoSecret(t, run, vectorSecret0, vectorSecret1)
		})
	}
}

// TestCommandVerifyMatchesHandler checks that verify and the handler give
// the same reason for the same captured request.
func TestCommandVerifyMatchesHandler(t *testing.T) {
	body := []byte(`{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"","callback_url":"https://example.test/cronofy","recipient":{"email":"a@example.test","status":"accepted"}}}`)
	h := provisionKindsHandler(t, "", nil)
	digests, err := parseSignature(nil, []string{sign([]byte("kinds-test-secret"), body)}, h.MaxDigests)
	if err != nil {
		t.Fatal(err)
	}
	_, handlerRejection := h.checkBody(body, digests)
	if handlerRejection == nil {
		t.Fatal("handler accepted an empty smart_invite_id, want a schema rejection")
	}

	file := writeTestFile(t, "body.json", body)
	run := runCallbackCommand(t, "verify", "--secret", "kinds-test-secret", "--signature", sign([]byte("kinds-test-secret"), body), file)
	if want := "reason: " + handlerRejection.reason.Error() + "\n"; !strings.Contains(run.stdout, want) {
		t.Errorf("verify output\n%s\nlacks the handler's reason line %q", run.stdout, want)
	}
}

func TestCommandSendToGuard(t *testing.T) {
	url := loadExample(t)
	body := writeTestFile(t, "smart_invite.json", readCallbackFile(t, "testdata/smart_invite.json"))
	t.Setenv("CRONOFY_TEST_SECRET", exampleSecret)

	accepted := runCallbackCommand(t, "send", "--secret-env", "CRONOFY_TEST_SECRET", url, body)
	if accepted.err != nil {
		t.Errorf("send with the demo secret: %v\nstdout: %s", accepted.err, accepted.stdout)
	}
	if want := "status: 200 OK\n"; accepted.stdout != want {
		t.Errorf("send with the demo secret: got %q, want %q", accepted.stdout, want)
	}
	assertNoSecret(t, accepted, exampleSecret)

	rejected := runCallbackCommand(t, "send", "--secret", "not-the-demo-secret", url, body)
	if rejected.err != errCallbackRejected {
		t.Errorf("send with another secret: got error %v, want errCallbackRejected", rejected.err)
	}
	if want := "status: 401 Unauthorized\nreason: no digest matches any configured client secret\n"; rejected.stdout != want {
		t.Errorf("send with another secret: got %q, want %q", rejected.stdout, want)
	}
	assertNoSecret(t, rejected, "not-the-demo-secret")

	wrongType := runCallbackCommand(t, "send", "--secret", exampleSecret, "--content-type", "text/plain", url, body)
	if want := "status: 415 Unsupported Media Type\nreason: unsupported media type, expected application/json\n"; wrongType.stdout != want {
		t.Errorf("send as text/plain: got %q, want %q", wrongType.stdout, want)
	}
}

func TestCommandSendPlainReason(t *testing.T) {
	ports := freePorts(t, 2)
	loadCaddyfile(t, globalOptions(ports[0], ports[1])+fmt.Sprintf(`
:%d {
	cronofy_callback {
		secret plain-reason-secret
	}
	respond "not reached"
	handle_errors {
		respond "{http.error.message}"
	}
}
`, ports[0]))
	body := writeTestFile(t, "body.json", []byte(vectorBodyText))

	run := runCallbackCommand(t, "send", "--secret", "another-secret", fmt.Sprintf("http://127.0.0.1:%d/", ports[0]), body)
	if want := "status: 401 Unauthorized\nreason: no digest matches any configured client secret\n"; run.stdout != want {
		t.Errorf("send: got %q, want %q", run.stdout, want)
	}
}

func TestResponseReason(t *testing.T) {
	tests := []struct {
		contentType string
		body        string
		want        string
	}{
		{"application/problem+json", `{"detail":"no digest matches"}`, "no digest matches"},
		{"application/problem+json; charset=utf-8", `{"title":"Unauthorized"}`, ""},
		{"application/problem+json", `not json`, ""},
		{"text/plain; charset=utf-8", "first line\nsecond line", "first line"},
		{"text/html", "<p>no</p>", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := responseReason(tt.contentType, []byte(tt.body)); got != tt.want {
			t.Errorf("responseReason(%q, %q) = %q, want %q", tt.contentType, tt.body, got, tt.want)
		}
	}
}

func TestCommandSendNoRedirect(t *testing.T) {
	redirect := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/elsewhere", http.StatusPermanentRedirect))
	t.Cleanup(redirect.Close)
	body := writeTestFile(t, "body.json", []byte(vectorBodyText))

	run := runCallbackCommand(t, "send", "--secret", vectorSecret0, redirect.URL, body)
	if want := "status: 308 Permanent Redirect\n"; run.stdout != want {
		t.Errorf("send to a redirect: got %q, want %q", run.stdout, want)
	}
	if run.err != errCallbackRejected {
		t.Errorf("send to a redirect: got error %v, want errCallbackRejected", run.err)
	}
}
