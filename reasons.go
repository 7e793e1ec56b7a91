package cronofy

import (
	"errors"
)

// Outcomes of requests that are not rejected.
const (
	// outcomeAccepted is the outcome of a request that passed every check.
	outcomeAccepted = "accepted"
	// outcomeReplayed is the outcome of a verified body that replay
	// defence recognized as delivered before: it gets 200 and is not
	// forwarded again.
	outcomeReplayed = "replayed"
)

// Codes of the rejection reasons. Each is the outcome label of
// caddy_cronofy_callback_requests_total, the outcome field of the
// rejection log entry and the value of {http.cronofy_callback.outcome}.
// The set is fixed, so the label stays bounded, and the codes are part of
// the module's interface: dashboards and alerts use them.
const (
	reasonMethodNotAllowed           = "method_not_allowed"
	reasonInvalidURLToken            = "invalid_url_token"
	reasonMissingSignature           = "missing_signature"
	reasonMalformedSignature         = "malformed_signature"
	reasonTooManyDigests             = "too_many_digests"
	reasonUnsupportedContentEncoding = "unsupported_content_encoding"
	reasonUnsupportedMediaType       = "unsupported_media_type"
	reasonBodyTooLarge               = "body_too_large"
	reasonIncompleteBody             = "incomplete_body"
	reasonSignatureMismatch          = "signature_mismatch"
	reasonInvalidJSON                = "invalid_json"
	reasonMissingNotificationType    = "missing_notification_type"
	reasonInvalidNotificationType    = "invalid_notification_type"
	reasonSchemaViolation            = "schema_violation"
	reasonUnknownNotificationType    = "unknown_notification_type"
	reasonInternalError              = "internal_error"
	reasonReplayInFlight             = "replay_in_flight"
)

// rejectionReasons lists every rejection reason code in the order the
// checks run.
var rejectionReasons = []string{
	reasonMethodNotAllowed,
	reasonInvalidURLToken,
	reasonMissingSignature,
	reasonMalformedSignature,
	reasonTooManyDigests,
	reasonUnsupportedContentEncoding,
	reasonUnsupportedMediaType,
	reasonBodyTooLarge,
	reasonIncompleteBody,
	reasonSignatureMismatch,
	reasonInvalidJSON,
	reasonMissingNotificationType,
	reasonInvalidNotificationType,
	reasonSchemaViolation,
	reasonUnknownNotificationType,
	reasonInternalError,
	reasonReplayInFlight,
}

// Errors of checkSchema that are not a schema violation.
var (
	errMissingNotificationType   = errors.New("missing notification.type")
	errNotificationTypeNotString = errors.New("notification.type is not a string")
	errUnknownNotificationType   = errors.New("unknown notification type rejected by unknown_types reject")
)

// rejection is a failed check: the response status, the reason code and
// the reason text for the log and {http.error.message}. The handler
// returns it inside a caddyhttp.HandlerError, so its text is the reason.
type rejection struct {
	status int
	code   string
	reason error
}

func (r *rejection) Error() string { return r.reason.Error() }

func (r *rejection) Unwrap() error { return r.reason }

// rejectionCode returns the reason code carried by an error of reject.
func rejectionCode(err error) string {
	var rejected *rejection
	if errors.As(err, &rejected) {
		return rejected.code
	}
	return reasonInternalError
}

// signatureReasonCode returns the reason code of a parseSignature error.
func signatureReasonCode(err error) string {
	switch {
	case errors.Is(err, errNoSignature):
		return reasonMissingSignature
	case errors.Is(err, errTooManyDigests):
		return reasonTooManyDigests
	}
	return reasonMalformedSignature
}

// schemaReasonCode returns the reason code of a checkSchema error.
func schemaReasonCode(err error) string {
	switch {
	case errors.Is(err, errMissingNotificationType):
		return reasonMissingNotificationType
	case errors.Is(err, errNotificationTypeNotString):
		return reasonInvalidNotificationType
	case errors.Is(err, errUnknownNotificationType):
		return reasonUnknownNotificationType
	}
	return reasonSchemaViolation
}
