// Package validators compares JSON Schema libraries on the Smart Invite
// schema and example body, to back the choice of the validator that the
// guard uses. It is a module of its own so that the libraries it compares
// stay out of the guard's dependencies and out of `go test ./...` at the
// repository root. Run it from this folder:
//
//	go test -run '^$' -bench . -benchmem -count 5
//
// The parsing strategies for the guard's strict JSON checks are compared
// by BenchmarkParseStrategies in the root package, because they need no
// extra dependency and measure the guard's own parser.
package validators

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	google "github.com/google/jsonschema-go/jsonschema"
	kaptinlin "github.com/kaptinlin/jsonschema"
	santhosh "github.com/santhosh-tekuri/jsonschema/v6"
)

// bundledSchema returns schemas/smart_invite.json with the definitions of
// schemas/common.json merged into its $defs and its references to them
// rewritten as local ones, so that every library gets one document and no
// library's reference loading is measured.
func bundledSchema(t testing.TB) []byte {
	t.Helper()
	invite := readJSON(t, "../../schemas/smart_invite.json")
	common := readJSON(t, "../../schemas/common.json")

	defs := invite["$defs"].(map[string]any)
	for name, def := range common["$defs"].(map[string]any) {
		if _, clash := defs[name]; clash {
			t.Fatalf("common.json and smart_invite.json both define $defs/%s", name)
		}
		defs[name] = def
	}

	bundled, err := json.Marshal(invite)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(bundled, []byte(`"common.json#/$defs/`), []byte(`"#/$defs/`))
}

func readJSON(t testing.TB, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return doc
}

// knownZones replaces the guard's embedded IANA zone set. The guard's tzid
// format costs one map lookup, and so does this one.
var knownZones = map[string]bool{"Etc/UTC": true, "Europe/London": true, "Europe/Paris": true, "America/New_York": true}

func validTZID(name string) bool { return knownZones[name] }

// validator is one library's compiled Smart Invite schema.
type validator struct {
	name     string
	validate func(instance any) error
	// formats reports whether the library asserts "format" (date-time and
	// the custom tzid), which is part of the work it does.
	formats bool
}

func compileValidators(t testing.TB) []validator {
	t.Helper()
	schema := bundledSchema(t)

	// santhosh-tekuri/jsonschema/v6, set up as the guard sets it up.
	sc := santhosh.NewCompiler()
	sc.DefaultDraft(santhosh.Draft2020)
	sc.AssertFormat()
	sc.RegisterFormat(&santhosh.Format{Name: "tzid", Validate: func(v any) error {
		if name, ok := v.(string); ok && !validTZID(name) {
			return fmt.Errorf("unknown time zone")
		}
		return nil
	}})
	doc, err := santhosh.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.AddResource("https://schemas.example.invalid/smart_invite.json", doc); err != nil {
		t.Fatal(err)
	}
	santhoshSchema, err := sc.Compile("https://schemas.example.invalid/smart_invite.json")
	if err != nil {
		t.Fatal(err)
	}

	// google/jsonschema-go does not assert formats.
	var googleSchema google.Schema
	if err := json.Unmarshal(schema, &googleSchema); err != nil {
		t.Fatal(err)
	}
	googleResolved, err := googleSchema.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}

	// kaptinlin/jsonschema with formats asserted and tzid registered.
	kc := kaptinlin.NewCompiler()
	kc.SetAssertFormat(true)
	kc.RegisterFormat("tzid", func(v any) bool {
		name, ok := v.(string)
		return !ok || validTZID(name)
	}, "string")
	kaptinlinSchema, err := kc.Compile(schema)
	if err != nil {
		t.Fatal(err)
	}

	return []validator{
		{name: "santhosh-tekuri", formats: true, validate: santhoshSchema.Validate},
		{name: "google", formats: false, validate: googleResolved.Validate},
		{name: "kaptinlin", formats: true, validate: func(instance any) error {
			if result := kaptinlinSchema.Validate(instance); !result.IsValid() {
				return fmt.Errorf("invalid: %v", result.Errors)
			}
			return nil
		}},
	}
}

// instance decodes body into the generic tree every library accepts. The
// Smart Invite example has no numbers, so float64 and json.Number trees
// are the same here.
func instance(t testing.TB, body []byte) any {
	t.Helper()
	var tree any
	if err := json.Unmarshal(body, &tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

func exampleBody(t testing.TB) []byte {
	t.Helper()
	body, err := os.ReadFile("../../testdata/smart_invite.json")
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestValidatorsAgree checks that every library accepts the example and
// rejects the same broken bodies, so the benchmark compares equal work.
// A date that matches the pattern but not the date-time format is caught
// only by libraries that assert formats.
func TestValidatorsAgree(t *testing.T) {
	example := string(exampleBody(t))
	cases := []struct {
		name       string
		body       string
		valid      bool
		formatOnly bool
	}{
		{name: "example", body: example, valid: true},
		{name: "unknown status", body: strings.Replace(example, `"tentative"`, `"maybe"`, 1)},
		{name: "empty id", body: strings.Replace(example, `"example_id"`, `""`, 1)},
		{name: "proposal without end", body: strings.Replace(example, `"end": {`, `"finish": {`, 1)},
		{name: "month 13", body: strings.Replace(example, "2026-04-21T23", "2026-13-21T23", 1), formatOnly: true},
		{name: "unknown zone", body: strings.Replace(example, "Europe/Paris", "Europe/Nowhere", 1), formatOnly: true},
	}

	for _, v := range compileValidators(t) {
		for _, tc := range cases {
			err := v.validate(instance(t, []byte(tc.body)))
			wantValid := tc.valid || tc.formatOnly && !v.formats
			if (err == nil) != wantValid {
				t.Errorf("%s, %s: got error %v, want valid %t", v.name, tc.name, err, wantValid)
			}
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	example := exampleBody(b)
	valid := instance(b, example)
	invalid := instance(b, bytes.Replace(example, []byte(`"tentative"`), []byte(`"maybe"`), 1))

	for _, v := range compileValidators(b) {
		b.Run(v.name+"/valid", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.validate(valid); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(v.name+"/invalid", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.validate(invalid); err == nil {
					b.Fatal("invalid body passed")
				}
			}
		})
	}
}
