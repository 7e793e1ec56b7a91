package cronofy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// placeholderPrefix starts the name of every placeholder this handler sets.
const placeholderPrefix = "http.cronofy_callback."

// headerPrefix starts the name of every request header this handler owns.
// Inbound headers with this prefix are removed before the handler sets its
// own, so a client can never supply one.
const headerPrefix = "X-Cronofy-"

// logging is the rule for whether a field's value may appear in a
// rejection log entry.
type logging int

const (
	logNever  logging = iota // payload text such as comments
	logAlways                // identifiers that help an operator find a delivery
	logEmail                 // email addresses, logged only when log_emails is on
)

// field is one value read from a verified body.
type field struct {
	// placeholder is the name under http.cronofy_callback.
	placeholder string
	// key is placeholderPrefix + placeholder, built once at start-up so
	// that exposing a value does not allocate the name on every request.
	key string
	// header is the request header that carries the value upstream, or ""
	// when the value is only a placeholder.
	header string
	// path is the location of the value in the body.
	path []string
	// log is the rule for when the value may appear in a rejection log entry.
	log logging
}

// listField is an array of objects whose members are exposed as
// placeholders "<placeholder>.<index>.<member>", with the array length
// in "<placeholder>.count".
type listField struct {
	placeholder string
	path        []string
	members     []field
}

// fieldSet lists what the handler reads from one kind of callback body.
type fieldSet struct {
	fields []field
	lists  []listField
}

// notificationTypeField is read from every body, known type or not.
var notificationTypeField = field{
	placeholder: "notification_type",
	key:         placeholderPrefix + "notification_type",
	header:      "X-Cronofy-Notification-Type",
	path:        []string{"notification", "type"},
	log:         logAlways,
}

// setKeys fills in the full placeholder name of every field of set.
func (set fieldSet) setKeys() {
	for i := range set.fields {
		set.fields[i].key = placeholderPrefix + set.fields[i].placeholder
	}
}

// lookup returns the value at path in tree.
func lookup(tree any, path []string) (any, bool) {
	value := tree
	for _, key := range path {
		object, ok := value.(map[string]any)
		if !ok {
			return nil, false
		}
		if value, ok = object[key]; !ok {
			return nil, false
		}
	}
	return value, true
}

// scalarText returns the text of a string, number or boolean. Null,
// objects and arrays have none.
func scalarText(value any) (string, bool) {
	switch v := value.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// exposeFields sets the request headers and placeholders of set from tree.
func exposeFields(set fieldSet, tree map[string]any, header http.Header, repl *caddy.Replacer) {
	for _, f := range set.fields {
		value, found := lookup(tree, f.path)
		if !found {
			continue
		}
		text, ok := scalarText(value)
		if !ok {
			continue
		}

		// A string is stored as the interface value the tree already
		// holds, which saves boxing it again; the placeholder text is the
		// same either way.
		if _, isString := value.(string); isString {
			repl.Set(f.key, value)
		} else {
			repl.Set(f.key, text)
		}
		if f.header != "" {
			header.Set(f.header, encodeHeaderValue(text))
		}
	}

	// Members of a list are placeholders only: a header carries one
	// value, not one per array element.
	for _, list := range set.lists {
		value, _ := lookup(tree, list.path)
		items, ok := value.([]any)
		if !ok {
			continue
		}
		repl.Set(placeholderPrefix+list.placeholder+".count", len(items))
		for i, item := range items {
			prefix := placeholderPrefix + list.placeholder + "." + strconv.Itoa(i) + "."
			for _, member := range list.members {
				if text, ok := fieldText(item, member.path); ok {
					repl.Set(prefix+member.placeholder, text)
				}
			}
		}
	}
}

// appendLogFields appends the values of set that a log entry may show:
// identifiers always, email addresses only when logEmails is true. Log
// field names are the placeholder names with "_" for ".".
func appendLogFields(out []zap.Field, set fieldSet, tree map[string]any, logEmails bool) []zap.Field {
	for _, f := range set.fields {
		if f.log == logNever || f.log == logEmail && !logEmails {
			continue
		}
		if text, ok := fieldText(tree, f.path); ok {
			out = append(out, zap.String(strings.ReplaceAll(f.placeholder, ".", "_"), text))
		}
	}
	return out
}

// fieldText returns the text of the scalar at path in tree.
func fieldText(tree any, path []string) (string, bool) {
	value, found := lookup(tree, path)
	if !found {
		return "", false
	}
	return scalarText(value)
}

// encodeHeaderValue writes every byte outside printable ASCII, and "%"
// itself, as %XX, so that any UTF-8 text survives as a header value and a
// backend can restore it with a standard percent-decoder.
func encodeHeaderValue(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}

	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0F])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c < 0x20 || c > 0x7E || c == '%'
}

// stripOwnedHeaders removes every inbound header whose name starts with
// X-Cronofy-. Names are compared without regard to case, and "_" and "."
// count as "-", because CGI-style backends (PHP, for one) map all three to
// the same variable name and would otherwise read a spoofed X_Cronofy_ or
// X.Cronofy. header. Caddy v2.11 drops such names itself unless the server
// lists them in expected_underscore_headers or expected_dot_headers.
func stripOwnedHeaders(header http.Header) {
	for name := range header {
		if isOwnedHeader(name) {
			delete(header, name)
		}
	}
}

func isOwnedHeader(name string) bool {
	if len(name) < len(headerPrefix) {
		return false
	}
	for i := 0; i < len(headerPrefix); i++ {
		c := name[i]
		if c == '_' || c == '.' {
			c = '-'
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		want := headerPrefix[i]
		if 'a' <= want && want <= 'z' {
			want -= 'a' - 'A'
		}
		if c != want {
			return false
		}
	}
	return true
}
