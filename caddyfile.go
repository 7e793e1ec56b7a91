package cronofy

import (
	"math"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("cronofy_callback", parseCaddyfile)
	// Right after the other authentication handlers, so the guard runs
	// before any handler that responds to the request or proxies it.
	httpcaddyfile.RegisterDirectiveOrder("cronofy_callback", httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	cronofy_callback [<matcher>] {
//	    secret        <client_secret>
//	    max_body_size <size>
//	    unknown_types pass|reject
//	    max_depth     <levels>
//	    max_digests   <count>
//	    log_emails
//	    schema        <builtin_name>|<file>
//	    schema_for    <notification_type> <file>
//	    replay_window <duration>
//	    replay_storage
//	    replay_max_entries <count>
//	    url_token     <token>
//	    url_token_query <parameter>
//	}
//
// secret and url_token may be repeated, and secret is required at least
// once. schema_for may be repeated once per notification type. Every other
// subdirective may appear once.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}

	seen := make(map[string]bool)
	for d.NextBlock(0) {
		option := d.Val()
		if option != "secret" && option != "schema_for" && option != "url_token" {
			if seen[option] {
				return d.Errf("duplicate subdirective %q", option)
			}
			seen[option] = true
		}

		switch option {
		case "secret":
			var secret string
			if !d.AllArgs(&secret) {
				return d.ArgErr()
			}
			h.Secrets = append(h.Secrets, secret)

		case "max_body_size":
			var text string
			if !d.AllArgs(&text) {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(text)
			if err != nil || size == 0 || size > math.MaxInt32 {
				return d.Errf("invalid max_body_size %q: want a size such as 256KiB, at least 1 byte and less than 2GiB", text)
			}
			h.MaxBodySize = int64(size)

		case "unknown_types":
			var mode string
			if !d.AllArgs(&mode) {
				return d.ArgErr()
			}
			if mode != UnknownTypesPass && mode != UnknownTypesReject {
				return d.Errf("invalid unknown_types %q: want %s or %s", mode, UnknownTypesPass, UnknownTypesReject)
			}
			h.UnknownTypes = mode

		case "max_depth":
			n, err := parsePositiveInt(d)
			if err != nil {
				return err
			}
			h.MaxDepth = n

		case "max_digests":
			n, err := parsePositiveInt(d)
			if err != nil {
				return err
			}
			h.MaxDigests = n

		case "log_emails":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.LogEmails = true

		case "schema":
			var schema string
			if !d.AllArgs(&schema) {
				return d.ArgErr()
			}
			h.Schema = schema

		case "schema_for":
			var notificationType, file string
			if !d.AllArgs(&notificationType, &file) {
				return d.ArgErr()
			}
			if _, dup := h.TypeSchemas[notificationType]; dup {
				return d.Errf("duplicate schema_for %q", notificationType)
			}
			if h.TypeSchemas == nil {
				h.TypeSchemas = make(map[string]string)
			}
			h.TypeSchemas[notificationType] = file

		case "replay_window":
			var text string
			if !d.AllArgs(&text) {
				return d.ArgErr()
			}
			window, err := caddy.ParseDuration(text)
			if err != nil || window <= 0 {
				return d.Errf("invalid replay_window %q: want a positive duration such as 24h", text)
			}
			h.ReplayWindow = caddy.Duration(window)

		case "replay_storage":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ReplayStorage = true

		case "replay_max_entries":
			n, err := parsePositiveInt(d)
			if err != nil {
				return err
			}
			h.ReplayMaxEntries = n

		case "url_token":
			var token string
			if !d.AllArgs(&token) {
				return d.ArgErr()
			}
			h.URLTokens = append(h.URLTokens, token)

		case "url_token_query":
			var parameter string
			if !d.AllArgs(&parameter) {
				return d.ArgErr()
			}
			h.URLTokenQuery = parameter

		default:
			return d.Errf("unrecognized subdirective %q", option)
		}
	}

	if len(h.Secrets) == 0 {
		return d.Err("cronofy_callback needs at least one secret")
	}
	return nil
}

// parsePositiveInt reads the single argument of the current subdirective
// as an integer of at least 1.
func parsePositiveInt(d *caddyfile.Dispenser) (int, error) {
	option := d.Val()
	var text string
	if !d.AllArgs(&text) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 {
		return 0, d.Errf("invalid %s %q: want a whole number of at least 1", option, text)
	}
	return n, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
