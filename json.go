package cronofy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// DefaultMaxDepth is the default nesting limit of a callback body. The
// deepest documented Cronofy payload nests about six levels, so 32 leaves
// room for new fields while bounding the recursion an attacker can cause.
const DefaultMaxDepth = 32

// decoderPool reuses decoders, whose internal buffers would otherwise be
// allocated for every request.
var decoderPool = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

// parseObject decodes body as exactly one JSON object and returns it as a
// tree of map[string]any, []any, string, json.Number, bool and nil, the
// form the schema validator expects. It rejects what a lenient parser
// would let through and a backend might read differently: invalid UTF-8,
// duplicate object keys, trailing commas, data after the value and
// nesting deeper than maxDepth. The returned error never quotes the body.
func parseObject(body []byte, maxDepth int) (map[string]any, error) {
	if len(body) == 0 {
		return nil, errors.New("empty body")
	}

	dec := decoderPool.Get().(*jsontext.Decoder)
	// A bytes.Buffer lets the decoder read body in place, without a copy.
	dec.Reset(bytes.NewBuffer(body))
	defer func() {
		dec.Reset(bytes.NewBuffer(nil))
		decoderPool.Put(dec)
	}()

	if kind := dec.PeekKind(); kind != '{' {
		if kind == 0 {
			_, err := dec.ReadToken()
			return nil, describeJSONError(err)
		}
		return nil, fmt.Errorf("top-level JSON value is %s, not an object", kindName(kind))
	}

	value, err := readValue(dec, maxDepth)
	if err != nil {
		return nil, err
	}

	end := dec.InputOffset()
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			// The decoder's offset is now past the extra token, so the
			// start of the extra data is found from the end of the object.
			start := len(body) - len(bytes.TrimLeft(body[end:], " \t\r\n"))
			return nil, fmt.Errorf("data after the JSON object at byte offset %d", start)
		}
		return nil, describeJSONError(err)
	}
	return value.(map[string]any), nil
}

// readValue reads the next value of dec and everything nested in it.
func readValue(dec *jsontext.Decoder, maxDepth int) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, describeJSONError(err)
	}

	switch tok.Kind() {
	case '{':
		if dec.StackDepth() > maxDepth {
			return nil, fmt.Errorf("JSON nesting exceeds the maximum depth of %d at byte offset %d", maxDepth, dec.InputOffset())
		}
		object := make(map[string]any)
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, describeJSONError(err)
			}
			// The token is only valid until the next read.
			key := name.String()
			member, err := readValue(dec, maxDepth)
			if err != nil {
				return nil, err
			}
			object[key] = member
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, describeJSONError(err)
		}
		return object, nil

	case '[':
		if dec.StackDepth() > maxDepth {
			return nil, fmt.Errorf("JSON nesting exceeds the maximum depth of %d at byte offset %d", maxDepth, dec.InputOffset())
		}
		array := []any{}
		for dec.PeekKind() != ']' {
			element, err := readValue(dec, maxDepth)
			if err != nil {
				return nil, err
			}
			array = append(array, element)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, describeJSONError(err)
		}
		return array, nil

	case '"':
		return tok.String(), nil
	case '0':
		// The raw digits keep integers beyond float64 precision exact.
		return json.Number(tok.String()), nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected JSON token at byte offset %d", dec.InputOffset())
}

// describeJSONError turns a decoder error into a message with the kind of
// problem and its byte offset. Decoder messages can quote body content
// (an object key, for one), so only the category is kept.
func describeJSONError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("truncated JSON")
	}

	var syntaxErr *jsontext.SyntacticError
	if !errors.As(err, &syntaxErr) {
		return errors.New("invalid JSON")
	}

	offset := syntaxErr.ByteOffset
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		return fmt.Errorf("duplicate object key at byte offset %d", offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON")
	case isInvalidUTF8(syntaxErr):
		return fmt.Errorf("invalid UTF-8 in JSON string at byte offset %d", offset)
	}
	return fmt.Errorf("invalid JSON at byte offset %d", offset)
}

// isInvalidUTF8 reports whether a syntax error is about UTF-8. The decoder
// does not export its UTF-8 error value, so its fixed text is matched.
func isInvalidUTF8(err *jsontext.SyntacticError) bool {
	return err.Err != nil && bytes.Contains([]byte(err.Err.Error()), []byte("UTF-8"))
}

func kindName(kind jsontext.Kind) string {
	switch kind {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "not a JSON value"
}
