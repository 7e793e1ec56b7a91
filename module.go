// Package cronofy provides a Caddy HTTP handler that authenticates Cronofy
// callbacks before they reach a backend.
package cronofy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler's limits.
const (
	// DefaultMaxBodySize is 256 KiB. Cronofy callbacks are a few KiB at
	// most, so this leaves ample room without letting a client make the
	// handler buffer large bodies.
	DefaultMaxBodySize = 256 << 10

	// DefaultMaxDigests allows one digest per client secret of several
	// applications during a rotation. Cronofy sends one per active secret.
	DefaultMaxDigests = 8
)

// Values of Handler.UnknownTypes.
const (
	UnknownTypesPass   = "pass"
	UnknownTypesReject = "reject"
)

// Handler authenticates Cronofy callbacks. It reads the request body once
// and checks its Cronofy-HMAC-SHA256 signature against every configured
// client secret. It then validates the JSON against the schema of its
// notification type. A valid request goes to the next handler (normally
// reverse_proxy) with the same bytes and with X-Cronofy-* headers read
// from the verified body.
// Inbound X-Cronofy-* headers are removed first, so a client cannot set one.
//
// Rejections are returned as HTTP errors, so handle_errors routes can shape
// the response; {http.error.message} holds a short reason that never
// contains a digest, a client secret or body content:
//
// | Status | When |
// |--------|------|
// | 405 | the method is not POST (with `Allow: POST`) |
// | 401 | no signature header, no well-formed digest in it, or too many digests; checked before the body is read |
// | 415 | a Content-Encoding other than identity, or a media type other than application/json |
// | 413 | the body is larger than max_body_size |
// | 400 | the body is shorter than its Content-Length or the client aborted it |
// | 401 | no digest matches any client secret |
// | 400 | the body is empty, not UTF-8, not exactly one JSON object, has duplicate keys or nests deeper than max_depth |
// | 422 | notification.type is missing or not a string, or the body fails the schema of its type |
// | 422 | the notification type is unknown and unknown_types is reject |
//
// After a request is accepted these placeholders are set, each only when
// the body has the value (Smart Invite values apply to smart_invite
// callbacks):
//
// | Placeholder | Value |
// |-------------|-------|
// | `{http.cronofy_callback.secret_index}` | index in secrets of the client secret that matched |
// | `{http.cronofy_callback.notification_type}` | notification.type |
// | `{http.cronofy_callback.smart_invite_id}` | smart_invite.smart_invite_id |
// | `{http.cronofy_callback.callback_url}` | smart_invite.callback_url |
// | `{http.cronofy_callback.recipient.*}` | email, status, comment, proposal.start.time, proposal.start.tzid, proposal.end.time, proposal.end.tzid of smart_invite.recipient |
// | `{http.cronofy_callback.reply.*}` | the same members of smart_invite.reply |
// | `{http.cronofy_callback.recipients.count}` | length of smart_invite.recipients |
// | `{http.cronofy_callback.recipients.N.*}` | the same members of smart_invite.recipients[N] |
//
// `{http.cronofy_callback.outcome}` is set on every request the handler
// decides on: accepted, replayed, or the code of the rejection reason
// (such as signature_mismatch), the same value as the outcome label of
// the caddy_cronofy_callback_requests_total metric.
type Handler struct {
	// The client secrets of the Cronofy applications whose callbacks this
	// route accepts. A request passes when its signature header contains
	// the digest of any of them, so during a rotation both the old and the
	// new secret are listed. At least one is required. Each secret is used
	// as raw bytes, exactly as Cronofy uses it, and may be an {env.*} or
	// {file.*} placeholder, resolved once when the configuration loads; a
	// placeholder that is unset or empty stops the configuration from
	// loading. Surrounding whitespace, such as a file's final newline, is
	// trimmed.
	Secrets []string `json:"secrets,omitempty"`

	// The largest request body accepted, in bytes. Larger bodies are
	// rejected with 413, before reading when Content-Length declares the
	// size and as soon as the limit is passed otherwise. Default: 262144
	// (256 KiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// What to do with a notification type that has no schema: "pass"
	// forwards it after its signature and JSON syntax are checked, because
	// Cronofy requires receivers to accept types they do not know yet.
	// "reject" responds with 422. Default: "pass".
	UnknownTypes string `json:"unknown_types,omitempty"`

	// The deepest nesting of JSON objects and arrays accepted, counting the
	// top-level object as 1. Deeper bodies are rejected with 400. Default: 32.
	MaxDepth int `json:"max_depth,omitempty"`

	// The largest number of comma-separated digests accepted in the
	// signature header. Cronofy sends one per active client secret; a
	// header with more is rejected with 401 before the body is read.
	// Default: 8.
	MaxDigests int `json:"max_digests,omitempty"`

	// Whether rejection log entries may include email addresses from the
	// body. Identifiers such as smart_invite_id are always logged. Default:
	// false.
	LogEmails bool `json:"log_emails,omitempty"`

	// The schema that every body on this route must satisfy, instead of
	// the schema chosen by notification.type. It is either the name of a
	// built-in schema (smart_invite, verification, change,
	// profile_disconnected, profile_initial_sync_completed,
	// conferencing_profile_disconnected, scheduling_conversation_joined,
	// scheduling_conversation_updated, scheduling_request,
	// real_time_scheduling, event_trigger, conferencing_subscription) or
	// the path of a JSON Schema file, loaded when the configuration loads.
	// Use it for callbacks without a notification wrapper, such as
	// Real-Time Scheduling callback URLs, event triggers and conferencing
	// subscriptions. With it, notification.type is optional. It cannot be
	// combined with type_schemas.
	Schema string `json:"schema,omitempty"`

	// JSON Schema files by notification type, loaded when the
	// configuration loads. A file given here replaces the built-in schema
	// of that type, and makes an otherwise unknown type known, so custom
	// or future callback kinds can be validated without a new release.
	TypeSchemas map[string]string `json:"type_schemas,omitempty"`

	// How long a delivered body is remembered. A body identical to one
	// whose upstream returned 2xx inside this window gets 200 and is not
	// forwarded again. One whose delivery is still in progress gets 409,
	// so that Cronofy retries it later. Bodies whose upstream
	// failed are forwarded again, so Cronofy's retries pass. Cronofy signs
	// nothing but the body, so without this a captured callback can be
	// replayed at any time. Note that a recipient who accepts, declines
	// and accepts again produces a byte-identical third body, which is then
	// not forwarded inside the window. Default: 0 (off).
	ReplayWindow caddy.Duration `json:"replay_window,omitempty"`

	// Whether the replay store lives in Caddy's configured storage instead
	// of memory, so that several Caddy instances sharing that storage
	// behind one load balancer recognize each other's deliveries. Default:
	// false (memory). Needs replay_window.
	ReplayStorage bool `json:"replay_storage,omitempty"`

	// The maximum number of bodies the in-memory replay store remembers.
	// When it is full the oldest entry is dropped, which can only let a
	// replay of that body through. Needs replay_window. Default: 100000.
	ReplayMaxEntries int `json:"replay_max_entries,omitempty"`

	// Secret tokens, one of which must appear in the request URL. Cronofy
	// recommends a per-channel token in each callback_url as a second
	// factor beside the signature. The token is checked in constant time
	// before the signature and the body, so requests without it cost
	// almost nothing. A missing or wrong token is rejected with 401.
	// Placeholders and trimming work as for secrets. Default: none.
	URLTokens []string `json:"url_tokens,omitempty"`

	// The query parameter that carries the URL token. When empty, the
	// token is the last segment of the request path. Default: "".
	URLTokenQuery string `json:"url_token_query,omitempty"`

	secrets     []string
	verifier    *verifier
	urlToken    *urlTokenChecker
	replay      *replayGuard
	fixedKind   *compiledKind
	typeSchemas map[string]*compiledKind
	builtins    map[string]*compiledKind
	metrics     *callbackMetrics
	logger      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.cronofy_callback",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves the client secrets, applies defaults, registers the
// metrics and loads the schemas.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.checkOptionCombinations(); err != nil {
		return err
	}
	h.applyDefaults()

	if len(h.Secrets) == 0 {
		return errors.New("at least one client secret is required")
	}
	secrets, err := h.resolveSecrets("secrets", "client secret", h.Secrets)
	if err != nil {
		return err
	}
	h.secrets = secrets
	h.verifier = newVerifier(secrets)

	if len(h.URLTokens) > 0 {
		tokens, err := h.resolveSecrets("url_tokens", "URL token", h.URLTokens)
		if err != nil {
			return err
		}
		h.urlToken = newURLTokenChecker(tokens, h.URLTokenQuery)
	}

	if h.ReplayWindow > 0 {
		h.replay = h.newReplayGuard(ctx)
	}

	// A context made without caddy.NewContext has no registry, and the
	// handler then works without metrics.
	if registry := ctx.GetMetricsRegistry(); registry != nil {
		h.metrics, err = registerMetrics(registry)
		if err != nil {
			return fmt.Errorf("registering metrics: %v", err)
		}
		h.metrics.initSecretMatches(len(secrets))
	}

	return h.loadSchemas()
}

// checkOptionCombinations rejects options that would have no effect, so a
// configuration never looks stricter than it is. It runs before defaults
// are applied, while an unset option is still zero.
func (h *Handler) checkOptionCombinations() error {
	if h.Schema != "" && len(h.TypeSchemas) > 0 {
		return errors.New("schema and type_schemas (schema_for) cannot be combined: with schema, every body on the route is validated by that schema alone")
	}
	if h.ReplayWindow == 0 && (h.ReplayStorage || h.ReplayMaxEntries != 0) {
		return errors.New("replay_storage and replay_max_entries need replay_window")
	}
	return nil
}

// applyDefaults sets every limit left at zero to its default.
func (h *Handler) applyDefaults() {
	if h.MaxBodySize == 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	if h.UnknownTypes == "" {
		h.UnknownTypes = UnknownTypesPass
	}
	if h.MaxDepth == 0 {
		h.MaxDepth = DefaultMaxDepth
	}
	if h.MaxDigests == 0 {
		h.MaxDigests = DefaultMaxDigests
	}
	if h.ReplayMaxEntries == 0 {
		h.ReplayMaxEntries = DefaultReplayMaxEntries
	}
}

// loadSchemas compiles the configured schema files and looks up the
// built-in schemas this route uses.
func (h *Handler) loadSchemas() error {
	var err error
	h.builtins, err = compiledBuiltins()
	if err != nil {
		return err
	}

	if h.Schema != "" {
		h.fixedKind, err = h.resolveSchema(h.Schema)
		if err != nil {
			return err
		}
	}

	h.typeSchemas = make(map[string]*compiledKind, len(h.TypeSchemas))
	for notificationType, file := range h.TypeSchemas {
		schema, err := compileSchemaFile(file)
		if err != nil {
			return fmt.Errorf("schema for notification type %q: %v", notificationType, err)
		}
		kind := &compiledKind{name: notificationType, schema: schema}
		// Headers and placeholders of a built-in type still apply when
		// its schema is replaced; they are read only when present.
		if builtin, ok := builtinKindForType(notificationType); ok {
			kind.fields = builtin.fields
		}
		h.typeSchemas[notificationType] = kind
	}
	return nil
}

// resolveSchema returns the built-in schema named name, or compiles the
// file name refers to. Names of built-in schemas contain neither a path
// separator nor a dot, which keeps the two apart.
func (h *Handler) resolveSchema(name string) (*compiledKind, error) {
	if !strings.ContainsAny(name, `./\`) {
		kind, ok := h.builtins[name]
		if !ok {
			return nil, fmt.Errorf("unknown built-in schema %q; use one of %s, or the path of a JSON Schema file", name, strings.Join(builtinKindNames(), ", "))
		}
		return kind, nil
	}

	schema, err := compileSchemaFile(name)
	if err != nil {
		return nil, err
	}
	return &compiledKind{name: name, schema: schema}, nil
}

// wholePlaceholder matches a secret that is a single placeholder, the only
// case in which the raw value can be quoted in an error without risking
// part of a literal secret.
var wholePlaceholder = regexp.MustCompile(`^\{(env|file)\.[^{}]+\}$`)

// resolveSecrets replaces the placeholders in each configured secret value
// and trims surrounding whitespace. Errors and warnings name a value by
// its field and index, never by its content.
func (h *Handler) resolveSecrets(field, noun string, values []string) ([]string, error) {
	repl := caddy.NewReplacer()
	resolved := make([]string, len(values))
	for i, raw := range values {
		secret, err := repl.ReplaceOrErr(raw, true, true)
		if err != nil {
			if wholePlaceholder.MatchString(raw) {
				return nil, fmt.Errorf("%s[%d]: placeholder %s is unset, empty or unreadable", field, i, raw)
			}
			return nil, fmt.Errorf("%s[%d]: a placeholder in it is unknown, unset or empty", field, i)
		}

		trimmed := strings.TrimSpace(secret)
		if trimmed != secret {
			h.logger.Warn("trimmed surrounding whitespace from "+noun,
				zap.String("field", field), zap.Int("index", i))
		}
		if trimmed == "" {
			return nil, fmt.Errorf("%s[%d]: %s is empty", field, i, noun)
		}
		resolved[i] = trimmed
	}
	return resolved, nil
}

// newReplayGuard sets up replay defence with the configured store. The
// storage store is swept of expired entries while the configuration runs.
func (h *Handler) newReplayGuard(ctx caddy.Context) *replayGuard {
	window := time.Duration(h.ReplayWindow)
	if !h.ReplayStorage {
		return newReplayGuard(window, newMemoryReplayStore(h.ReplayMaxEntries))
	}

	store := &storageReplayStore{storage: ctx.Storage()}
	go func() {
		ticker := time.NewTicker(min(window, time.Hour))
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-ticker.C:
				store.sweep(ctx, now, h.logger)
			}
		}
	}()
	return newReplayGuard(window, store)
}

// Validate checks the configured limits.
func (h *Handler) Validate() error {
	if h.UnknownTypes != UnknownTypesPass && h.UnknownTypes != UnknownTypesReject {
		return fmt.Errorf("unknown_types must be %q or %q, got %q", UnknownTypesPass, UnknownTypesReject, h.UnknownTypes)
	}
	if h.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size must be positive, got %d", h.MaxBodySize)
	}
	if h.MaxDepth < 1 {
		return fmt.Errorf("max_depth must be at least 1, got %d", h.MaxDepth)
	}
	if h.MaxDigests < 1 {
		return fmt.Errorf("max_digests must be at least 1, got %d", h.MaxDigests)
	}
	if h.ReplayWindow < 0 {
		return fmt.Errorf("replay_window must not be negative, got %s", time.Duration(h.ReplayWindow))
	}
	if h.ReplayMaxEntries < 1 {
		return fmt.Errorf("replay_max_entries must be at least 1, got %d", h.ReplayMaxEntries)
	}
	if h.URLTokenQuery != "" && len(h.URLTokens) == 0 {
		return errors.New("url_token_query needs at least one URL token")
	}
	return nil
}

// ServeHTTP verifies the callback and passes it on, or rejects it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	callback, err := h.authenticate(w, r)
	if err != nil {
		h.observeRequest(start, rejectionCode(err), callback.notificationType)
		return err
	}
	// The next handler may read the body again through GetBody until it
	// returns, so the buffer is released only then.
	defer callback.body.release()

	if ce := h.logger.Check(zap.DebugLevel, "callback verified"); ce != nil {
		ce.Write(append(h.logIDs(callback.tree, callback.fields), zap.Int("secret_index", callback.secretIndex))...)
	}
	if h.replay != nil {
		return h.forwardOnce(w, r, next, start, callback)
	}
	h.observeRequest(start, outcomeAccepted, callback.notificationType)
	return next.ServeHTTP(w, r)
}

// verifiedCallback is the result of authenticate.
type verifiedCallback struct {
	checkedBody
	// body holds the verified bytes after the request was accepted, and
	// is nil after a rejection. The caller releases it.
	body *callbackBody
}

// authenticate runs the checks on r in the documented order and, when
// all pass, prepares r for the next handler. A rejection is returned as
// an HTTP error, together with what was learned about the body before it.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (verifiedCallback, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return verifiedCallback{}, h.rejectUnread(w, r, http.StatusMethodNotAllowed, reasonMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}

	if h.urlToken != nil && !h.urlToken.check(r) {
		return verifiedCallback{}, h.rejectUnread(w, r, http.StatusUnauthorized, reasonInvalidURLToken, errURLToken)
	}

	// The signature header is checked before anything else about the
	// body, so a request without one costs no read and a client that sent
	// Expect: 100-continue gets its response before it uploads.
	var digestArray [DefaultMaxDigests]digest
	digests, err := parseSignature(digestArray[:0], r.Header.Values(SignatureHeader), h.MaxDigests)
	if err != nil {
		return verifiedCallback{}, h.rejectUnread(w, r, http.StatusUnauthorized, signatureReasonCode(err), err)
	}

	if err := checkContentEncoding(r.Header); err != nil {
		return verifiedCallback{}, h.rejectUnread(w, r, http.StatusUnsupportedMediaType, reasonUnsupportedContentEncoding, err)
	}
	if err := checkContentType(r.Header); err != nil {
		return verifiedCallback{}, h.rejectUnread(w, r, http.StatusUnsupportedMediaType, reasonUnsupportedMediaType, err)
	}

	body, err := readBody(r, h.MaxBodySize)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return verifiedCallback{}, h.rejectUnread(w, r, http.StatusRequestEntityTooLarge, reasonBodyTooLarge, err)
		}
		return verifiedCallback{}, h.rejectUnread(w, r, http.StatusBadRequest, reasonIncompleteBody, fmt.Errorf("reading request body: %w", err))
	}
	h.metrics.observeBodySize(len(body.data))

	checked, rejected := h.checkBody(body.data, digests)
	if checked.secretIndex >= 0 {
		h.metrics.observeSecretMatch(checked.secretIndex)
	}
	if rejected != nil {
		body.release()
		var fields []zap.Field
		if checked.tree != nil {
			fields = h.logIDs(checked.tree, checked.fields)
		}
		return verifiedCallback{checkedBody: checked}, h.reject(w, r, rejected.status, rejected.code, rejected.reason, fields...)
	}

	if err := h.prepareForward(r, body, checked); err != nil {
		body.release()
		return verifiedCallback{checkedBody: checked}, h.reject(w, r, http.StatusInternalServerError, reasonInternalError, err)
	}
	return verifiedCallback{checkedBody: checked, body: body}, nil
}

// checkedBody is the result of checkBody: the values read from a body.
type checkedBody struct {
	// secretIndex is the index of the client secret that matched, or -1.
	secretIndex      int
	tree             map[string]any
	notificationType string
	fields           fieldSet
}

// checkBody verifies a complete body against the digests of its
// signature header and validates it, in the handler's order: signature,
// JSON syntax, schema. The verify command of the CLI calls it too, so
// both give the same reasons. The result holds what was learned before a
// check failed.
func (h *Handler) checkBody(data []byte, digests []digest) (checkedBody, *rejection) {
	checked := checkedBody{secretIndex: h.verifier.verify(data, digests)}
	if checked.secretIndex < 0 {
		return checked, &rejection{http.StatusUnauthorized, reasonSignatureMismatch, errSignatureMismatch}
	}

	tree, err := parseObject(data, h.MaxDepth)
	if err != nil {
		return checked, &rejection{http.StatusBadRequest, reasonInvalidJSON, err}
	}
	checked.tree = tree

	checked.notificationType, checked.fields, err = h.checkSchema(tree)
	if err != nil {
		return checked, &rejection{http.StatusUnprocessableEntity, schemaReasonCode(err), err}
	}
	return checked, nil
}

// forwardOnce passes a verified callback on unless an identical body was
// delivered inside the replay window or is being delivered right now.
func (h *Handler) forwardOnce(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, start time.Time, callback verifiedCallback) error {
	key := newReplayKey(callback.body.data)
	state, err := h.replay.begin(r.Context(), key, time.Now())
	if err != nil {
		// The replay store is a hardening layer; losing a genuine
		// callback to a storage outage would be worse than a replay.
		h.logger.Warn("replay store lookup failed; forwarding the callback", zap.Error(err))
		h.observeRequest(start, outcomeAccepted, callback.notificationType)
		return next.ServeHTTP(w, r)
	}

	switch state {
	case replayDone:
		h.logger.Info("replayed callback not forwarded",
			append(h.logIDs(callback.tree, callback.fields), zap.String("remote_ip", remoteIP(r)), zap.String("client_ip", clientIP(r)))...)
		h.setOutcome(r, outcomeReplayed)
		h.observeRequest(start, outcomeReplayed, callback.notificationType)
		w.WriteHeader(http.StatusOK)
		return nil
	case replayInFlight:
		w.Header().Set("Retry-After", "5")
		err := h.reject(w, r, http.StatusConflict, reasonReplayInFlight, errors.New("an identical callback is being delivered"), h.logIDs(callback.tree, callback.fields)...)
		h.observeRequest(start, reasonReplayInFlight, callback.notificationType)
		return err
	}

	h.observeRequest(start, outcomeAccepted, callback.notificationType)
	recorder := &statusRecorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	delivered := false
	// The body leaves the in-flight set even when the next handler
	// panics, as reverse_proxy does with http.ErrAbortHandler when the
	// upstream breaks off its response. Otherwise every retry of the
	// body would get 409 until Caddy restarts.
	defer func() {
		// The request context may be canceled once the client is gone,
		// but the delivery outcome must still be recorded.
		if finishErr := h.replay.finish(context.WithoutCancel(r.Context()), key, delivered, time.Now()); finishErr != nil {
			h.logger.Warn("recording a delivered callback failed", zap.Error(finishErr))
		}
	}()
	err = next.ServeHTTP(recorder, r)
	delivered = recorder.delivered(err)
	return err
}

// checkContentEncoding accepts only unencoded bodies. Cronofy never
// compresses callbacks, and a digest over compressed bytes could not be
// checked against the JSON.
func checkContentEncoding(header http.Header) error {
	for _, line := range header.Values("Content-Encoding") {
		for coding := range strings.SplitSeq(line, ",") {
			coding = strings.TrimSpace(coding)
			if coding != "" && !strings.EqualFold(coding, "identity") {
				return fmt.Errorf("unsupported Content-Encoding %q", coding)
			}
		}
	}
	return nil
}

// checkContentType accepts only JSON. Cronofy sends
// "application/json; charset=utf-8".
func checkContentType(header http.Header) error {
	contentTypes := header.Values("Content-Type")
	if len(contentTypes) != 1 {
		return errors.New("request must have exactly one Content-Type of application/json")
	}
	mediaType, _, err := mime.ParseMediaType(contentTypes[0])
	if err != nil || mediaType != "application/json" {
		return errors.New("unsupported media type, expected application/json")
	}
	return nil
}

// checkSchema validates tree against the route's schema, or the schema of
// its notification type, and returns the type with the fields to read
// from the body. The type is "" when a route's fixed schema accepted a
// body without one.
func (h *Handler) checkSchema(tree map[string]any) (string, fieldSet, error) {
	value, found := lookup(tree, notificationTypeField.path)
	notificationType, isString := value.(string)

	kind := h.fixedKind
	if kind == nil {
		if !found {
			return "", fieldSet{}, errMissingNotificationType
		}
		if !isString {
			return "", fieldSet{}, errNotificationTypeNotString
		}
		kind = h.kindForType(notificationType)
	}

	if kind == nil {
		if h.UnknownTypes == UnknownTypesReject {
			return notificationType, fieldSet{}, errUnknownNotificationType
		}
		return notificationType, fieldSet{}, nil
	}

	if err := kind.schema.Validate(any(tree)); err != nil {
		return notificationType, kind.fields, fmt.Errorf("%s schema: %s", kind.name, describeSchemaError(err))
	}
	return notificationType, kind.fields, nil
}

// kindForType returns the schema for a notification type: the user's
// file for it, else the built-in one, else nil for an unknown type.
func (h *Handler) kindForType(notificationType string) *compiledKind {
	if kind, ok := h.typeSchemas[notificationType]; ok {
		return kind
	}
	builtin, ok := builtinKindForType(notificationType)
	if !ok {
		return nil
	}
	return h.builtins[builtin.name]
}

// prepareForward hands the verified bytes and the values read from them
// to the next handler.
func (h *Handler) prepareForward(r *http.Request, body *callbackBody, checked checkedBody) error {
	reader, err := body.newReader()
	if err != nil {
		return err
	}

	// The upstream receives exactly the bytes that were verified, with
	// their length, so nothing downstream re-reads a consumed stream or
	// forwards a chunked body that some backends would read as empty.
	// GetBody lets Go's transport resend the body when it retries.
	r.Body = reader
	r.GetBody = func() (io.ReadCloser, error) { return body.newReader() }
	r.ContentLength = int64(len(body.data))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(body.data)))
	r.Header.Del("Expect")

	stripOwnedHeaders(r.Header)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set(placeholderPrefix+"outcome", outcomeAccepted)
	repl.Set(placeholderPrefix+"secret_index", checked.secretIndex)
	if checked.notificationType != "" {
		repl.Set(notificationTypeField.key, checked.notificationType)
		r.Header.Set(notificationTypeField.header, encodeHeaderValue(checked.notificationType))
	}
	exposeFields(checked.fields, checked.tree, r.Header, repl)
	return nil
}

// reject logs the rejection at info level, sets the outcome placeholder
// to code and returns the rejection as an HTTP error whose message is the
// reason text.
//
// A rejected HTTP/1 request with Expect: 100-continue also gets
// Connection: close. Caddy v2.11 wraps the request body for its read
// idle timeout (read_body_idle, on by default), and the wrapper hides from
// net/http that the body was never requested. net/http would then wait
// for a body that the client sends only after 100 Continue, which delays
// the rejection until the client stops waiting. Closing skips that wait.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, status int, code string, reason error, fields ...zap.Field) error {
	if r.ProtoMajor == 1 && expectsContinue(r.Header) {
		w.Header().Set("Connection", "close")
	}

	if ce := h.logger.Check(zap.InfoLevel, "callback rejected"); ce != nil {
		ce.Write(append(fields,
			zap.String("reason", reason.Error()),
			zap.String("outcome", code),
			zap.Int("status", status),
			zap.String("remote_ip", remoteIP(r)),
			zap.String("client_ip", clientIP(r)),
		)...)
	}
	h.setOutcome(r, code)
	return caddyhttp.Error(status, &rejection{status: status, code: code, reason: reason})
}

// setOutcome sets {http.cronofy_callback.outcome}.
func (h *Handler) setOutcome(r *http.Request, outcome string) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(placeholderPrefix+"outcome", outcome)
	}
}

// rejectUnread rejects a request whose body has not been read, or not to
// its end. net/http drains an unread body before it writes the response,
// so that the connection can serve the next request, and Caddy's body
// wrapper hides from it that the body was never read, so it drains even a
// large one. An HTTP/1 request whose declared body is larger than
// max_body_size, or whose length is unknown, therefore gets
// Connection: close: the response goes out at once and the body is never
// read. A smaller body is drained, as for a wrongly signed request, and
// the connection stays open for the next request.
func (h *Handler) rejectUnread(w http.ResponseWriter, r *http.Request, status int, code string, reason error, fields ...zap.Field) error {
	if r.ProtoMajor == 1 && (r.ContentLength < 0 || r.ContentLength > h.MaxBodySize) {
		w.Header().Set("Connection", "close")
	}
	return h.reject(w, r, status, code, reason, fields...)
}

// expectsContinue reports whether header contains Expect: 100-continue.
func expectsContinue(header http.Header) bool {
	for _, line := range header.Values("Expect") {
		for token := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "100-continue") {
				return true
			}
		}
	}
	return false
}

// logIDs returns the identifying values of a body for a log entry: the
// notification type, ids, and emails when log_emails is on.
func (h *Handler) logIDs(tree map[string]any, fields fieldSet) []zap.Field {
	var out []zap.Field
	if value, ok := lookup(tree, notificationTypeField.path); ok {
		if text, ok := value.(string); ok {
			out = append(out, zap.String(notificationTypeField.placeholder, text))
		}
	}
	return appendLogFields(out, fields, tree, h.LogEmails)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientIP returns the client address that Caddy determined, which honors
// the server's trusted_proxies setting.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		return ip
	}
	return remoteIP(r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
