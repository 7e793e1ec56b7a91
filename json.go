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

// treeParser holds a decoder and the reader it decodes from. Both are
// pooled, because the decoder's internal buffers would otherwise be
// allocated for every request.
type treeParser struct {
	dec jsontext.Decoder
	// input lets the decoder read the body in place: the decoder takes
	// the bytes of a *bytes.Buffer without copying them.
	input    bytes.Buffer
	names    map[string]string
	maxDepth int
}

var parserPool = sync.Pool{New: func() any { return &treeParser{names: schemaNames()} }}

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

	p := parserPool.Get().(*treeParser)
	p.input = *bytes.NewBuffer(body)
	p.dec.Reset(&p.input)
	p.maxDepth = maxDepth
	defer func() {
		p.input = bytes.Buffer{}
		p.dec.Reset(&p.input)
		parserPool.Put(p)
	}()

	dec := &p.dec
	if kind := dec.PeekKind(); kind != '{' {
		if kind == 0 {
			_, err := dec.ReadToken()
			return nil, describeJSONError(err)
		}
		return nil, fmt.Errorf("top-level JSON value is %s, not an object", kindName(kind))
	}

	value, err := p.readValue()
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

// readValue reads the next value and everything nested in it.
func (p *treeParser) readValue() (any, error) {
	switch p.dec.PeekKind() {
	case '"':
		return p.readString()
	case '0':
		raw, err := p.dec.ReadValue()
		if err != nil {
			return nil, describeJSONError(err)
		}
		// The raw digits keep integers beyond float64 precision exact.
		return json.Number(raw), nil
	}

	tok, err := p.dec.ReadToken()
	if err != nil {
		return nil, describeJSONError(err)
	}

	switch tok.Kind() {
	case '{':
		if p.dec.StackDepth() > p.maxDepth {
			return nil, fmt.Errorf("JSON nesting exceeds the maximum depth of %d at byte offset %d", p.maxDepth, p.dec.InputOffset())
		}
		object := make(map[string]any)
		for p.dec.PeekKind() != '}' {
			// Reading the name as a value still checks it for duplicates.
			key, err := p.readName()
			if err != nil {
				return nil, err
			}
			member, err := p.readValue()
			if err != nil {
				return nil, err
			}
			object[key] = member
		}
		if _, err := p.dec.ReadToken(); err != nil {
			return nil, describeJSONError(err)
		}
		return object, nil

	case '[':
		if p.dec.StackDepth() > p.maxDepth {
			return nil, fmt.Errorf("JSON nesting exceeds the maximum depth of %d at byte offset %d", p.maxDepth, p.dec.InputOffset())
		}
		array := []any{}
		for p.dec.PeekKind() != ']' {
			element, err := p.readValue()
			if err != nil {
				return nil, err
			}
			array = append(array, element)
		}
		if _, err := p.dec.ReadToken(); err != nil {
			return nil, describeJSONError(err)
		}
		return array, nil

	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected JSON token at byte offset %d", p.dec.InputOffset())
}

// readString reads the next string value.
func (p *treeParser) readString() (string, error) {
	content, err := p.readStringBytes()
	return string(content), err
}

// readName reads the next object name. A name that a built-in schema
// mentions is returned from p.names, which saves an allocation for
// almost every name of a Cronofy body.
func (p *treeParser) readName() (string, error) {
	content, err := p.readStringBytes()
	if err != nil {
		return "", err
	}
	if name, ok := p.names[string(content)]; ok {
		return name, nil
	}
	return string(content), nil
}

// readStringBytes reads the next string and returns its unquoted content,
// which is only valid until the next read.
func (p *treeParser) readStringBytes() ([]byte, error) {
	raw, err := p.dec.ReadValue()
	if err != nil {
		return nil, describeJSONError(err)
	}
	if len(raw) < 2 || raw[0] != '"' {
		return nil, fmt.Errorf("unexpected JSON token at byte offset %d", p.dec.InputOffset())
	}

	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	content, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return nil, describeJSONError(err)
	}
	return content, nil
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
