package cronofy

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

//go:generate go run gen_tzids.go

// schemaFiles holds the built-in JSON Schema documents. They are plain
// draft 2020-12 files so that a backend can validate with the same
// documents in its own language.
//
//go:embed schemas/*.json
var schemaFiles embed.FS

// schemaBaseURL is the base under which the built-in schemas are
// registered with the compiler, so that relative references between
// them ("common.json#/$defs/time") resolve without touching the network
// or the file system.
const schemaBaseURL = "https://schemas.caddy-cronofy.invalid/"

// zoneSet is the set of IANA zone names accepted by the tzid format.
var zoneSet = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 600)
	for _, name := range strings.Fields(zoneNames) {
		set[name] = struct{}{}
	}
	return set
})

// validateTZID implements the "tzid" format: a zone name known to the
// IANA time zone database embedded in the binary.
func validateTZID(v any) error {
	name, ok := v.(string)
	if !ok {
		return nil
	}
	if _, known := zoneSet()[name]; !known {
		return errors.New("unknown IANA time zone name")
	}
	return nil
}

// newSchemaCompiler returns a compiler that asserts formats, supports the
// tzid format and has every built-in schema registered as a resource.
func newSchemaCompiler() (*jsonschema.Compiler, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "tzid", Validate: validateTZID})

	entries, err := fs.ReadDir(schemaFiles, "schemas")
	if err != nil {
		return nil, err
	}
	for _, entry := range entries {
		data, err := schemaFiles.ReadFile(path.Join("schemas", entry.Name()))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("built-in schema %s: %v", entry.Name(), err)
		}
		if err := c.AddResource(schemaBaseURL+entry.Name(), doc); err != nil {
			return nil, fmt.Errorf("built-in schema %s: %v", entry.Name(), err)
		}
	}
	return c, nil
}

// schemaNames returns every object name that appears in the built-in
// schemas, which includes the property names of every callback kind.
// The parser takes object names from this set instead of allocating them.
var schemaNames = sync.OnceValue(func() map[string]string {
	// compiledBuiltins reports a built-in file that cannot be read or
	// parsed; one skipped here only costs allocations while parsing.
	names := make(map[string]string)
	entries, _ := fs.ReadDir(schemaFiles, "schemas")
	for _, entry := range entries {
		data, err := schemaFiles.ReadFile(path.Join("schemas", entry.Name()))
		if err != nil {
			continue
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			continue
		}
		collectNames(doc, names)
	}
	return names
})

func collectNames(value any, names map[string]string) {
	switch v := value.(type) {
	case map[string]any:
		for name, member := range v {
			names[name] = name
			collectNames(member, names)
		}
	case []any:
		for _, element := range v {
			collectNames(element, names)
		}
	}
}

// compiledBuiltins compiles the built-in schemas once per process: they
// are part of the binary, so every configuration shares them and a
// configuration reload does not pay for them again.
var compiledBuiltins = sync.OnceValues(func() (map[string]*compiledKind, error) {
	c, err := newSchemaCompiler()
	if err != nil {
		return nil, err
	}

	compiled := make(map[string]*compiledKind, len(builtinKinds))
	for name, kind := range builtinKinds {
		schema, err := c.Compile(schemaBaseURL + name + ".json")
		if err != nil {
			return nil, fmt.Errorf("compiling built-in schema %s: %v", name, err)
		}
		compiled[name] = &compiledKind{name: name, schema: schema, fields: kind.fields}
	}
	return compiled, nil
})

// compiledKind is a schema ready to validate, with the fields to read from
// the bodies it accepts.
type compiledKind struct {
	name   string
	schema *jsonschema.Schema
	fields fieldSet
}

// compileSchemaFile compiles a user's JSON Schema file. The file may refer
// to the built-in schemas by their URL under schemaBaseURL.
func compileSchemaFile(file string) (*jsonschema.Schema, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("schema file %s: %v", file, err)
	}
	c, err := newSchemaCompiler()
	if err != nil {
		return nil, err
	}
	schema, err := c.Compile(file)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %v", file, err)
	}
	return schema, nil
}

// describeSchemaError summarizes a validation failure as the JSON pointer
// of the first failing value and the keyword it failed. Validator
// messages can quote the value itself, which is body content, so they are
// not used.
func describeSchemaError(err error) string {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return "schema validation failed"
	}

	leaf := deepestCause(verr)

	pointer := "/" + strings.Join(leaf.InstanceLocation, "/")
	switch k := leaf.ErrorKind.(type) {
	case *kind.Required:
		return fmt.Sprintf("%s: missing required property %q", pointer, strings.Join(k.Missing, `", "`))
	case *kind.Type:
		return fmt.Sprintf("%s: got %s, want %s", pointer, k.Got, strings.Join(k.Want, " or "))
	case *kind.Format:
		return fmt.Sprintf("%s: not a valid %s", pointer, k.Want)
	}

	keyword := "schema"
	if path := leaf.ErrorKind.KeywordPath(); len(path) > 0 {
		keyword = path[len(path)-1]
	}
	return fmt.Sprintf("%s: fails %q", pointer, keyword)
}

// deepestCause returns the leaf error that points deepest into the
// instance. Under anyOf and oneOf the deepest leaf is usually the branch
// that came closest, which makes a more useful reason than the first.
func deepestCause(err *jsonschema.ValidationError) *jsonschema.ValidationError {
	if len(err.Causes) == 0 {
		return err
	}
	best := deepestCause(err.Causes[0])
	for _, cause := range err.Causes[1:] {
		if leaf := deepestCause(cause); len(leaf.InstanceLocation) > len(best.InstanceLocation) {
			best = leaf
		}
	}
	return best
}
