package cronofy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "cronofy-callback",
		Usage: "sign|send|verify [--secret <secret>] [--secret-env <name>] [--secret-file <path>] ...",
		Short: "Signs, sends and verifies Cronofy callbacks",
		Long: `
Tools for the Cronofy-HMAC-SHA256 signature of Cronofy callbacks, computed
the way Cronofy and the cronofy_callback handler compute it:

  sign    prints the signature header value of a body file
  send    POSTs a signed body file to a URL and prints the status
  verify  checks a captured body file and signature header value

Each subcommand takes client secrets from --secret <secret>,
--secret-env <name> (an environment variable) and --secret-file <path>,
each repeatable. Secret indexes follow the order of these flags on the
command line, like the order of secret lines in the Caddyfile.
Surrounding whitespace is trimmed, as the handler does. Prefer
--secret-env or --secret-file: a --secret value is visible to other
users in the process list. No output or error message contains a secret.

Run "caddy cronofy-callback <subcommand> --help" for the options of each.
`,
		CobraFunc: configureCallbackCommand,
	})
}

// configureCallbackCommand adds the subcommands to the cronofy-callback
// command. Tests call it on a command of their own.
func configureCallbackCommand(cmd *cobra.Command) {
	cmd.AddCommand(newSignCommand(), newSendCommand(), newVerifyCommand())
}

// errCallbackRejected makes the command exit with status 1 after it has
// printed why the callback was rejected, with no further message.
var errCallbackRejected = errors.New("callback rejected")

// silentFailure stops cmd with exit status 1 without cobra printing err.
func silentFailure(cmd *cobra.Command, err error) error {
	cmd.SilenceErrors = true
	return err
}

func newSignCommand() *cobra.Command {
	secrets := new(secretFlags)
	cmd := &cobra.Command{
		Use:   "sign [--secret <secret>] [--secret-env <name>] [--secret-file <path>] <body_file>",
		Short: "Prints the Cronofy-HMAC-SHA256 header value for a body file",
		Long: `
Prints the Cronofy-HMAC-SHA256 header value for the exact bytes of
<body_file> ("-" reads standard input): one Base64 HMAC-SHA256 digest per
client secret, joined by commas in the order the secrets were given, as
Cronofy sends them while an application has several active secrets.
`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := secrets.resolve(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			body, err := readBodyFile(cmd, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), signatureValue(keys, body))
			return err
		},
	}
	secrets.addFlags(cmd)
	return cmd
}

func newSendCommand() *cobra.Command {
	secrets := new(secretFlags)
	var contentType string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "send [--secret <secret>] [--secret-env <name>] [--secret-file <path>] [--content-type <type>] [--timeout <duration>] <url> <body_file>",
		Short: "POSTs a signed body file and prints the response status",
		Long: `
POSTs the exact bytes of <body_file> ("-" reads standard input) to <url>,
signed in the Cronofy-HMAC-SHA256 header with every client secret given,
as Cronofy delivers a callback. It prints the response status and, for a
rejection, the reason when the response carries one: the "detail" member
of an application/problem+json body or the first line of a text/plain
body. Redirects are not followed.

The exit status is 0 for a 2xx response and 1 otherwise.
`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := secrets.resolve(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			body, err := readBodyFile(cmd, args[1])
			if err != nil {
				return err
			}

			status, reason, err := postCallback(args[0], contentType, signatureValue(keys, body), body, timeout)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "status: %s\n", status)
			if reason != "" {
				fmt.Fprintf(out, "reason: %s\n", reason)
			}
			if !strings.HasPrefix(status, "2") {
				return silentFailure(cmd, errCallbackRejected)
			}
			return nil
		},
	}
	secrets.addFlags(cmd)
	cmd.Flags().StringVar(&contentType, "content-type", "application/json; charset=utf-8", "Content-Type header of the request")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time limit of the whole exchange, such as 10s")
	return cmd
}

func newVerifyCommand() *cobra.Command {
	secrets := new(secretFlags)
	var signatures, schemaFor []string
	var maxBodySize string
	h := new(Handler)
	cmd := &cobra.Command{
		Use:   "verify [--secret <secret>] [--secret-env <name>] [--secret-file <path>] --signature <header_value> [options] <body_file>",
		Short: "Checks a captured body file and signature header value",
		Long: `
Runs the checks of the cronofy_callback handler on a captured request:
the Cronofy-HMAC-SHA256 header value given with --signature (repeat it
for a request with several header lines) against the exact bytes of
<body_file> ("-" reads standard input), then the size limit, the JSON
syntax and the schema of the notification type. The options named like
the handler's options have the same meaning and defaults.

It prints "result: accepted" with the secret_index of the client secret
that matched, or "result: rejected" with the status the handler would
send, the outcome code and the same reason text as the handler. Headers
other than the signature, such as Content-Type, are not checked.

The exit status is 0 when the callback would be accepted and 1 otherwise.
`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := secrets.resolve(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := configureOfflineHandler(h, keys, maxBodySize, schemaFor); err != nil {
				return err
			}
			body, err := readBodyFile(cmd, args[0])
			if err != nil {
				return err
			}

			if !printVerdict(cmd.OutOrStdout(), h, body, signatures) {
				return silentFailure(cmd, errCallbackRejected)
			}
			return nil
		},
	}
	secrets.addFlags(cmd)
	flags := cmd.Flags()
	flags.StringArrayVar(&signatures, "signature", nil, "Cronofy-HMAC-SHA256 header value, repeatable for several header lines")
	flags.StringVar(&h.Schema, "schema", "", "built-in schema name or JSON Schema file for every body, like the handler's schema option")
	flags.StringArrayVar(&schemaFor, "schema-for", nil, "<notification_type>=<file>: JSON Schema file for a notification type, repeatable")
	flags.StringVar(&h.UnknownTypes, "unknown-types", UnknownTypesPass, "pass or reject a notification type that has no schema")
	flags.StringVar(&maxBodySize, "max-body-size", "256KiB", "maximum body size, such as 256KiB")
	flags.IntVar(&h.MaxDepth, "max-depth", DefaultMaxDepth, "maximum JSON nesting depth, the top-level object counting as 1")
	flags.IntVar(&h.MaxDigests, "max-digests", DefaultMaxDigests, "maximum number of comma-separated digests in the signature header")
	return cmd
}

// configureOfflineHandler prepares h to check captured requests as a
// provisioned handler would, with keys as its resolved client secrets.
// It skips Provision, which would expand placeholders in the secrets and
// register metrics.
func configureOfflineHandler(h *Handler, keys []string, maxBodySize string, schemaFor []string) error {
	size, err := humanize.ParseBytes(maxBodySize)
	if err != nil || size == 0 || size > math.MaxInt32 {
		return fmt.Errorf("invalid --max-body-size %q: want a size such as 256KiB, from 1 byte to 2GiB", maxBodySize)
	}
	h.MaxBodySize = int64(size)

	for _, pair := range schemaFor {
		notificationType, file, ok := strings.Cut(pair, "=")
		if !ok || notificationType == "" || file == "" {
			return fmt.Errorf("invalid --schema-for %q: want <notification_type>=<file>", pair)
		}
		if h.TypeSchemas == nil {
			h.TypeSchemas = make(map[string]string)
		}
		h.TypeSchemas[notificationType] = file
	}

	h.applyDefaults()
	if err := h.Validate(); err != nil {
		return err
	}
	h.secrets = keys
	h.verifier = newVerifier(keys)
	return h.loadSchemas()
}

// printVerdict runs the handler's checks on a captured request, prints
// the result to out and reports whether the request would be accepted.
func printVerdict(out io.Writer, h *Handler, body []byte, signatures []string) bool {
	digests, err := parseSignature(nil, signatures, h.MaxDigests)
	if err != nil {
		printRejection(out, rejection{http.StatusUnauthorized, signatureReasonCode(err), err})
		return false
	}
	if int64(len(body)) > h.MaxBodySize {
		printRejection(out, rejection{http.StatusRequestEntityTooLarge, reasonBodyTooLarge, errBodyTooLarge})
		return false
	}

	checked, rejected := h.checkBody(body, digests)
	if rejected != nil {
		printRejection(out, *rejected)
	} else {
		fmt.Fprintln(out, "result: accepted")
	}
	if checked.secretIndex >= 0 {
		fmt.Fprintf(out, "secret_index: %d\n", checked.secretIndex)
	}
	if checked.notificationType != "" {
		fmt.Fprintf(out, "notification_type: %s\n", encodeHeaderValue(checked.notificationType))
	}
	return rejected == nil
}

func printRejection(out io.Writer, r rejection) {
	fmt.Fprintln(out, "result: rejected")
	fmt.Fprintf(out, "status: %d\n", r.status)
	fmt.Fprintf(out, "outcome: %s\n", r.code)
	fmt.Fprintf(out, "reason: %s\n", r.reason)
}

// signatureValue returns the Cronofy-HMAC-SHA256 header value of body:
// one digest per client secret, joined by commas in the order of keys.
func signatureValue(keys []string, body []byte) string {
	digests := make([]string, len(keys))
	for i, key := range keys {
		digests[i] = sign([]byte(key), body)
	}
	return strings.Join(digests, ",")
}

// readBodyFile returns the bytes of path, or of standard input for "-".
func readBodyFile(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		body, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("reading the body from standard input: %v", err)
		}
		return body, nil
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the body file: %v", err)
	}
	return body, nil
}

// maxReasonBytes bounds how much of a response body send reads to find
// the rejection reason.
const maxReasonBytes = 64 << 10

// postCallback POSTs body to url with the signature header and returns
// the response status and the rejection reason it carries, if any.
func postCallback(url, contentType, signature string, body []byte, timeout time.Duration) (status, reason string, err error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", "", fmt.Errorf("invalid URL %q: %v", url, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(SignatureHeader, signature)

	client := &http.Client{
		Timeout: timeout,
		// A redirect would send the signed body to another place than
		// the one given, so it is reported instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("sending the callback: %v", err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReasonBytes))
	if err != nil {
		return "", "", fmt.Errorf("reading the response: %v", err)
	}
	if resp.StatusCode >= 300 {
		reason = responseReason(resp.Header.Get("Content-Type"), data)
	}
	return resp.Status, reason, nil
}

// responseReason returns the rejection reason in a response body: the
// detail member of an RFC 9457 problem document or the first line of a
// plain text body.
func responseReason(contentType string, data []byte) string {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch mediaType {
	case "application/problem+json":
		var problem struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(data, &problem) == nil {
			return problem.Detail
		}
	case "text/plain":
		line, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
		return strings.TrimSpace(string(line))
	}
	return ""
}

// secretSource is one client secret flag as given on the command line.
type secretSource struct {
	flag  string // "secret", "secret-env" or "secret-file"
	value string // the secret, the variable name or the file path
}

// secretFlags collects the --secret, --secret-env and --secret-file flags
// in command-line order, which gives each secret its index.
type secretFlags struct {
	sources []secretSource
}

// addFlags adds the three secret flags to cmd. They share one list, so
// the order of mixed flags is kept.
func (f *secretFlags) addFlags(cmd *cobra.Command) {
	flags := cmd.Flags()
	flags.Var(&secretFlag{list: f, name: "secret", kind: "secret"}, "secret", "client secret, repeatable (visible in the process list: prefer --secret-env or --secret-file)")
	flags.Var(&secretFlag{list: f, name: "secret-env", kind: "name"}, "secret-env", "environment variable that contains a client secret, repeatable")
	flags.Var(&secretFlag{list: f, name: "secret-file", kind: "path"}, "secret-file", "file that contains a client secret, repeatable")
}

// resolve reads every secret and trims surrounding whitespace, writing a
// warning to warnings that names a trimmed secret by its index. Errors
// name the secret by its index and source, never by its value.
func (f *secretFlags) resolve(warnings io.Writer) ([]string, error) {
	if len(f.sources) == 0 {
		return nil, errors.New("no client secret given: use --secret, --secret-env or --secret-file")
	}

	secrets := make([]string, len(f.sources))
	for i, source := range f.sources {
		raw, err := source.read()
		if err != nil {
			return nil, fmt.Errorf("secret %d: %v", i, err)
		}

		trimmed := strings.TrimSpace(raw)
		if trimmed != raw {
			fmt.Fprintf(warnings, "warning: trimmed surrounding whitespace from secret %d\n", i)
		}
		if trimmed == "" {
			return nil, fmt.Errorf("secret %d: client secret from --%s is empty", i, source.flag)
		}
		secrets[i] = trimmed
	}
	return secrets, nil
}

// read returns the untrimmed secret of s.
func (s secretSource) read() (string, error) {
	switch s.flag {
	case "secret-env":
		value, ok := os.LookupEnv(s.value)
		if !ok {
			return "", fmt.Errorf("environment variable %s given with --secret-env is not set", s.value)
		}
		return value, nil
	case "secret-file":
		data, err := os.ReadFile(s.value)
		if err != nil {
			// The error names the file and the failed operation only.
			return "", fmt.Errorf("reading --secret-file: %v", err)
		}
		return string(data), nil
	}
	return s.value, nil
}

// secretFlag is the flag value of one of the three secret flags.
type secretFlag struct {
	list *secretFlags
	name string
	kind string // the placeholder shown in help
}

// String returns "" so that help never shows a secret as a default.
func (v *secretFlag) String() string { return "" }

func (v *secretFlag) Set(value string) error {
	v.list.sources = append(v.list.sources, secretSource{flag: v.name, value: value})
	return nil
}

func (v *secretFlag) Type() string { return v.kind }
