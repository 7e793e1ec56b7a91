package cronofy

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// inputMarker is a distinctive string placed in bad bodies, values and
// secrets. An error message that contains it quotes the input.
const inputMarker = "zqxMARKERqz"

func TestParseObjectRejects(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // substring of the error message
	}{
		{"empty body", "", "empty body"},
		{"whitespace only", " \r\n\t", "truncated JSON"},
		{"truncated object", `{"` + inputMarker + `":`, "truncated JSON"},
		{"truncated string", `{"a":"` + inputMarker, "truncated JSON"},
		{"invalid UTF-8 in string", `{"a":"` + inputMarker + "\xff\"}", "invalid UTF-8"},
		{"invalid UTF-8 in key", `{"` + inputMarker + "\xff\":1}", "invalid UTF-8"},
		{"overlong UTF-8", `{"a":"` + inputMarker + "\xc0\xaf\"}", "invalid UTF-8"},
		{"UTF-8 encoded surrogate", `{"a":"` + inputMarker + "\xed\xa0\x80\"}", "invalid UTF-8"},
		{"escaped lone surrogate", `{"a":"` + inputMarker + `\ud800"}`, "invalid JSON"},
		{"unquoted key", `{` + inputMarker + `:1}`, "invalid JSON"},
		{"single quotes", `{'` + inputMarker + `':1}`, "invalid JSON"},
		{"leading zero", `{"` + inputMarker + `":01}`, "invalid JSON"},
		{"NaN", `{"` + inputMarker + `":NaN}`, "invalid JSON"},
		{"control character in string", `{"a":"` + inputMarker + "\x01\"}", "invalid JSON"},
		{"byte order mark", "\ufeff{\"" + inputMarker + "\":1}", "invalid JSON"},
		{"trailing comma in object", `{"` + inputMarker + `":1,}`, "invalid JSON"},
		{"trailing comma in array", `{"` + inputMarker + `":[1,]}`, "invalid JSON"},
		{"second object", `{}{"` + inputMarker + `":1}`, "data after the JSON object"},
		{"second object after space", `{} {"` + inputMarker + `":1}`, "data after the JSON object"},
		{"text after object", `{} ` + inputMarker, "invalid JSON"},
		{"number after object", `{} 1` + inputMarker, "data after the JSON object"},
		{"string after object", `{} "` + inputMarker + `"`, "data after the JSON object"},
		{"duplicate key", `{"` + inputMarker + `":1,"` + inputMarker + `":2}`, "duplicate object key"},
		{"duplicate nested key", `{"a":{"` + inputMarker + `":1,"` + inputMarker + `":1}}`, "duplicate object key"},
		{"duplicate key spelled with escape", `{"` + inputMarker + `":1,"\u007a` + inputMarker[1:] + `":2}`, "duplicate object key"},
		{"duplicate object-valued key", `{"` + inputMarker + `":{"b":1},"` + inputMarker + `":{"b":1}}`, "duplicate object key"},
		{"top-level array", `["` + inputMarker + `"]`, "is an array, not an object"},
		{"top-level string", `"` + inputMarker + `"`, "is a string, not an object"},
		{"top-level number", `12345`, "is a number, not an object"},
		{"top-level null", `null`, "is null, not an object"},
		{"top-level boolean", `true`, "is a boolean, not an object"},
		{"top-level garbage", inputMarker, "invalid JSON"},
	}
	for _, tt := range tests {
		_, err := parseObject([]byte(tt.body), DefaultMaxDepth)
		if err == nil {
			t.Errorf("%s: parseObject(%q): got nil error, want %q", tt.name, tt.body, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: parseObject(%q): got error %q, want it to contain %q", tt.name, tt.body, err, tt.want)
		}
		if strings.Contains(err.Error(), inputMarker) {
			t.Errorf("%s: parseObject(%q): error %q quotes the body", tt.name, tt.body, err)
		}
	}
}

// TestParseObjectDataAfterOffset checks that the reported offset is where
// the extra data starts, so an operator can find it in a captured body.
func TestParseObjectDataAfterOffset(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{}{}`, "at byte offset 2"},
		{`{"a":1} {}`, "at byte offset 8"},
		{"{}\n\t \"long string\"", "at byte offset 5"},
	}
	for _, tt := range tests {
		_, err := parseObject([]byte(tt.body), DefaultMaxDepth)
		if err == nil {
			t.Errorf("parseObject(%q): got nil error, want %q", tt.body, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseObject(%q): got error %q, want it to contain %q", tt.body, err, tt.want)
		}
	}
}

func TestParseObjectAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
		want map[string]any
	}{
		{"empty object", `{}`, map[string]any{}},
		{"trailing whitespace", "{\"a\":1} \r\n\t", map[string]any{"a": json.Number("1")}},
		{"leading whitespace", " \n{\"a\":1}", map[string]any{"a": json.Number("1")}},
		{"large integer", `{"n":12345678901234567890123}`, map[string]any{"n": json.Number("12345678901234567890123")}},
		{"exponent kept as written", `{"n":-1.50E+10}`, map[string]any{"n": json.Number("-1.50E+10")}},
		{"negative zero", `{"n":-0}`, map[string]any{"n": json.Number("-0")}},
		{"escapes decoded", `{"s":"caf\u00e9 a\/b \"q\" \\"}`, map[string]any{"s": `café a/b "q" \`}},
		{"escaped key decoded", `{"\u0061\/b":true}`, map[string]any{"a/b": true}},
		{"escaped schema name decoded", `{"notific\u0061tion":{"type":"change"}}`, map[string]any{"notification": map[string]any{"type": "change"}}},
		{"schema name and other names", `{"type":"a","types":"b","":"c"}`, map[string]any{"type": "a", "types": "b", "": "c"}},
		{"surrogate pair", `{"s":"\ud83d\ude00"}`, map[string]any{"s": "😀"}},
		{"raw UTF-8", `{"s":"zoë"}`, map[string]any{"s": "zoë"}},
		{"same key in sibling objects", `{"a":{"k":1},"b":{"k":2}}`, map[string]any{
			"a": map[string]any{"k": json.Number("1")},
			"b": map[string]any{"k": json.Number("2")},
		}},
		{"all value kinds", `{"o":{},"a":[],"s":"","n":0,"t":true,"f":false,"z":null}`, map[string]any{
			"o": map[string]any{}, "a": []any{}, "s": "", "n": json.Number("0"), "t": true, "f": false, "z": nil,
		}},
		{"array elements", `{"a":[1,"x",[null]]}`, map[string]any{"a": []any{json.Number("1"), "x", []any{nil}}}},
	}
	for _, tt := range tests {
		got, err := parseObject([]byte(tt.body), DefaultMaxDepth)
		if err != nil {
			t.Errorf("%s: parseObject(%q): got error %v, want nil", tt.name, tt.body, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parseObject(%q) = %#v, want %#v", tt.name, tt.body, got, tt.want)
		}
	}
}

// TestParseObjectMaxDepth checks the nesting limit at its boundary, with
// the top-level object counted as level 1.
func TestParseObjectMaxDepth(t *testing.T) {
	for _, maxDepth := range []int{1, 2, 5, DefaultMaxDepth} {
		tests := []struct {
			name   string
			body   string
			wantOK bool
		}{
			{"objects at max depth", nestedObjects(maxDepth), true},
			{"objects past max depth", nestedObjects(maxDepth + 1), false},
			{"arrays at max depth", nestedArrays(maxDepth), true},
			{"arrays past max depth", nestedArrays(maxDepth + 1), false},
		}
		for _, tt := range tests {
			_, err := parseObject([]byte(tt.body), maxDepth)
			if tt.wantOK && err != nil {
				t.Errorf("%s: parseObject(%q, %d): got error %v, want nil", tt.name, tt.body, maxDepth, err)
			}
			if !tt.wantOK && (err == nil || !strings.Contains(err.Error(), "maximum depth")) {
				t.Errorf("%s: parseObject(%q, %d): got error %v, want a maximum depth error", tt.name, tt.body, maxDepth, err)
			}
		}
	}
}

// TestParseObjectPublishedExample checks the Smart Invite example as
// Cronofy publishes it, which has a trailing comma inside "notification"
// and so is not JSON, and the same example without that comma.
func TestParseObjectPublishedExample(t *testing.T) {
	tests := []struct {
		file   string
		wantOK bool
	}{
		{"testdata/smart_invite_published.json", false},
		{"testdata/smart_invite.json", true},
	}
	for _, tt := range tests {
		body, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseObject(body, DefaultMaxDepth)
		if got := err == nil; got != tt.wantOK {
			t.Errorf("parseObject(%s): got error %v, want accepted = %t", tt.file, err, tt.wantOK)
		}
	}
}

// TestParseObjectReusesDecoder checks that a pooled decoder carries no
// state from a failed parse into the next one.
func TestParseObjectReusesDecoder(t *testing.T) {
	bodies := []string{`{"a":`, `{"a":1,"a":2}`, `{"a":[[[[`, `{}{}`}
	for _, bad := range bodies {
		if _, err := parseObject([]byte(bad), 2); err == nil {
			t.Errorf("parseObject(%q): got nil error, want an error", bad)
		}
		good := `{"a":1}`
		if _, err := parseObject([]byte(good), 2); err != nil {
			t.Errorf("parseObject(%q) after parseObject(%q): got error %v, want nil", good, bad, err)
		}
	}
}

// nestedObjects returns an object nested depth levels deep.
func nestedObjects(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
}

// nestedArrays returns an object holding arrays nested to a total of
// depth levels.
func nestedArrays(depth int) string {
	if depth == 1 {
		return "{}"
	}
	return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + "}"
}
