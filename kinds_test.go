package cronofy

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// provisionKindsHandler returns a provisioned handler with one secret and
// the given schema options.
func provisionKindsHandler(t *testing.T, schema string, typeSchemas map[string]string) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)

	h := &Handler{Secrets: []string{"kinds-test-secret"}, Schema: schema, TypeSchemas: typeSchemas}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision(schema=%q, type_schemas=%v): %v", schema, typeSchemas, err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return h
}

func readCallback(t *testing.T, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "callbacks", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// kindSample is one callback body with the route schema it is sent to
// ("" to choose by notification type) and what the handler must read
// from it.
type kindSample struct {
	file     string
	schema   string
	wantType string
	headers  map[string]string
	values   map[string]string
}

var kindSamples = []kindSample{
	{
		file: "verification", wantType: "verification",
		headers: map[string]string{"X-Cronofy-Channel-Id": "chn_6a8df5c5944f9501621a3083"},
		values:  map[string]string{"callback_url": "https://example.com/cronofy"},
	},
	{
		file: "change", wantType: "change",
		headers: map[string]string{
			"X-Cronofy-Channel-Id":    "chn_54cf7c7cb4ad4c1027000001",
			"X-Cronofy-Changes-Since": "2026-08-25T20:06:29Z",
		},
	},
	{
		file: "profile_disconnected", wantType: "profile_disconnected",
		headers: map[string]string{"X-Cronofy-Channel-Id": "chn_54cf7c7cb4ad4c1027000001"},
	},
	{
		file: "profile_initial_sync_completed", wantType: "profile_initial_sync_completed",
		headers: map[string]string{"X-Cronofy-Channel-Id": "chn_54cf7c7cb4ad4c1027000001"},
	},
	{
		file: "conferencing_profile_disconnected", wantType: "conferencing_profile_disconnected",
		headers: map[string]string{"X-Cronofy-Channel-Id": "chn_54cf7c7cb4ad4c1027000001"},
	},
	{
		file: "scheduling_conversation_joined", wantType: "scheduling_conversation_joined",
		headers: map[string]string{
			"X-Cronofy-Channel-Id":                 "chn_54cf7c7cb4ad4c1027000001",
			"X-Cronofy-Scheduling-Conversation-Id": "scv_55cfff7fb4af4c1027000005",
		},
	},
	{
		file: "scheduling_conversation_updated", wantType: "scheduling_conversation_updated",
		headers: map[string]string{"X-Cronofy-Scheduling-Conversation-Id": "scv_55cfff7fb4af4c1027000005"},
	},
	{
		file: "scheduling_request_time_chosen", wantType: "scheduling_request_time_chosen",
		headers: map[string]string{"X-Cronofy-Scheduling-Request-Id": "srq_80f7fece4f37897d62d86d80"},
		values: map[string]string{
			"triggered_at":              "2026-01-19T16:14:11Z",
			"recipients.count":          "1",
			"recipients.0.email":        "candidate@example.test",
			"event.summary":             "Interview",
			"scheduling_request_id":     "srq_80f7fece4f37897d62d86d80",
			"recipients.0.display_name": "A Candidate",
		},
	},
	{
		file: "real_time_scheduling", schema: "real_time_scheduling",
		headers: map[string]string{"X-Cronofy-Event-Id": "interview-42"},
		values: map[string]string{
			"event.start.time":   "2026-07-27T10:00:00Z",
			"event.end.tzid":     "Europe/London",
			"participants.0.sub": "acc_5ba21743f408617d1269ea1e",
			"user.tzid":          "Europe/London",
		},
	},
	{
		file: "event_trigger", schema: "event_trigger", wantType: "event_trigger",
		headers: map[string]string{"X-Cronofy-Event-Id": "board-meeting"},
		values:  map[string]string{"event.start": "2026-11-18T15:30:00Z", "event.event_uid": "evt_external_1234"},
	},
	{
		file: "conferencing_subscription", schema: "conferencing_subscription", wantType: "conferencing_assigned",
		headers: map[string]string{"X-Cronofy-Event-Id": "board-meeting"},
		values:  map[string]string{"event.start.tzid": "America/Chicago"},
	},
}

// checkSample validates body like ServeHTTP does after the signature and
// syntax checks, and returns the headers and placeholders it would set.
func checkSample(t *testing.T, h *Handler, body []byte) (string, http.Header, *caddy.Replacer, error) {
	t.Helper()
	tree, err := parseObject(body, h.MaxDepth)
	if err != nil {
		t.Fatalf("parseObject(%s): %v", body, err)
	}
	notificationType, fields, err := h.checkSchema(tree)
	header := make(http.Header)
	repl := caddy.NewEmptyReplacer()
	if err == nil {
		exposeFields(fields, tree, header, repl)
	}
	return notificationType, header, repl, err
}

func TestKindSamplesAccepted(t *testing.T) {
	for _, sample := range kindSamples {
		t.Run(sample.file, func(t *testing.T) {
			h := provisionKindsHandler(t, sample.schema, nil)
			body := readCallback(t, sample.file)

			gotType, header, repl, err := checkSample(t, h, body)
			if err != nil {
				t.Fatalf("body %s rejected: %v", body, err)
			}
			if gotType != sample.wantType {
				t.Errorf("notification type = %q, want %q", gotType, sample.wantType)
			}
			for name, want := range sample.headers {
				if got := header.Get(name); got != want {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			for name, want := range sample.values {
				got, _ := repl.GetString(placeholderPrefix + name)
				if got != want {
					t.Errorf("placeholder %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// mutate decodes body, applies change to the value at path and encodes
// the result again.
func mutate(t *testing.T, body []byte, path []string, change func(parent map[string]any, key string)) []byte {
	t.Helper()
	var tree map[string]any
	if err := json.Unmarshal(body, &tree); err != nil {
		t.Fatal(err)
	}
	parent, key := parentOf(t, tree, strings.Join(path, "."))
	change(parent, key)
	out, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKindRequiredFields(t *testing.T) {
	tests := []struct {
		file   string
		schema string
		path   string
	}{
		{"change", "", "notification.changes_since"},
		{"change", "", "channel"},
		{"change", "", "channel.channel_id"},
		{"change", "", "channel.callback_url"},
		{"profile_disconnected", "", "channel.channel_id"},
		{"profile_initial_sync_completed", "", "channel"},
		{"conferencing_profile_disconnected", "", "channel.callback_url"},
		{"scheduling_conversation_joined", "", "notification.scheduling_conversation_id"},
		{"scheduling_conversation_updated", "", "channel"},
		{"scheduling_request_time_chosen", "", "notification.triggered_at"},
		{"scheduling_request_time_chosen", "", "scheduling_request"},
		{"scheduling_request_time_chosen", "", "scheduling_request.scheduling_request_id"},
		{"change", "change", "notification.type"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.path, func(t *testing.T) {
			h := provisionKindsHandler(t, tt.schema, nil)
			body := mutate(t, readCallback(t, tt.file), strings.Split(tt.path, "."), func(parent map[string]any, key string) {
				delete(parent, key)
			})
			if _, _, _, err := checkSample(t, h, body); err == nil {
				t.Errorf("body without %s accepted: %s", tt.path, body)
			}
		})
	}
}

func TestKindMistypedFields(t *testing.T) {
	tests := []struct {
		file   string
		schema string
		path   string
		value  any
	}{
		{"verification", "", "channel.channel_id", 42},
		{"change", "", "notification.changes_since", "2026-08-25 20:06:29"},
		{"change", "", "notification.changes_since", "2026-08-25T20:06:29.123Z"},
		{"change", "", "channel.channel_id", "cal_54cf7c7cb4ad4c1027000001"},
		{"change", "", "channel.filters", "none"},
		{"profile_disconnected", "", "channel.callback_url", true},
		{"scheduling_conversation_joined", "", "notification.scheduling_conversation_id", ""},
		{"scheduling_request_time_chosen", "", "notification.triggered_at", "yesterday"},
		{"scheduling_request_time_chosen", "", "scheduling_request.scheduling_request_id", 7},
		{"scheduling_request_time_chosen", "", "scheduling_request.recipients", "candidate@example.test"},
		{"real_time_scheduling", "real_time_scheduling", "event.event_id", 42},
		{"real_time_scheduling", "real_time_scheduling", "user.tzid", "Mars/Olympus_Mons"},
		{"real_time_scheduling", "real_time_scheduling", "participants", map[string]any{}},
		{"event_trigger", "event_trigger", "event.start", "next tuesday"},
		{"conferencing_subscription", "conferencing_subscription", "event.event_id", []any{}},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.path, func(t *testing.T) {
			h := provisionKindsHandler(t, tt.schema, nil)
			body := mutate(t, readCallback(t, tt.file), strings.Split(tt.path, "."), func(parent map[string]any, key string) {
				parent[key] = tt.value
			})
			if _, _, _, err := checkSample(t, h, body); err == nil {
				t.Errorf("body with %s = %#v accepted: %s", tt.path, tt.value, body)
			}
		})
	}
}

func TestKindUnknownPropertiesAccepted(t *testing.T) {
	for _, sample := range kindSamples {
		t.Run(sample.file, func(t *testing.T) {
			h := provisionKindsHandler(t, sample.schema, nil)
			var tree map[string]any
			if err := json.Unmarshal(readCallback(t, sample.file), &tree); err != nil {
				t.Fatal(err)
			}
			addUnknownProperties(tree)
			body, err := json.Marshal(tree)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := checkSample(t, h, body); err != nil {
				t.Errorf("body with unknown properties rejected: %v\n%s", err, body)
			}
		})
	}
}

// addUnknownProperties adds a property that no schema names to every
// object in tree.
func addUnknownProperties(tree any) {
	switch v := tree.(type) {
	case map[string]any:
		for _, member := range v {
			addUnknownProperties(member)
		}
		v["added_by_cronofy_later"] = map[string]any{"nested": []any{1, "two"}}
	case []any:
		for _, item := range v {
			addUnknownProperties(item)
		}
	}
}

func TestUnknownTypePassesByDefault(t *testing.T) {
	h := provisionKindsHandler(t, "", nil)
	body := []byte(`{"notification":{"type":"calendar_sync_paused"},"anything":{"goes":true}}`)
	gotType, header, _, err := checkSample(t, h, body)
	if err != nil {
		t.Fatalf("unknown type rejected: %v", err)
	}
	if gotType != "calendar_sync_paused" {
		t.Errorf("notification type = %q, want calendar_sync_paused", gotType)
	}
	if len(header) != 0 {
		t.Errorf("headers = %v, want none besides the notification type", header)
	}
}

func TestFixedSchemaRejectsOtherKinds(t *testing.T) {
	h := provisionKindsHandler(t, "smart_invite", nil)
	if _, _, _, err := checkSample(t, h, readCallback(t, "change")); err == nil {
		t.Error("change notification accepted on a route fixed to smart_invite")
	}
}

func TestUserSchemaFiles(t *testing.T) {
	widgetSchema := writeWidgetSchema(t)

	tests := []struct {
		name        string
		schema      string
		typeSchemas map[string]string
		body        string
		wantErr     bool
	}{
		{"route schema accepts", widgetSchema, nil, `{"widget_id":"wdg_1"}`, false},
		{"route schema rejects", widgetSchema, nil, `{"widget_id":"other"}`, true},
		{"type schema accepts", "", map[string]string{"widget_created": widgetSchema}, `{"notification":{"type":"widget_created"},"widget_id":"wdg_1"}`, false},
		{"type schema rejects", "", map[string]string{"widget_created": widgetSchema}, `{"notification":{"type":"widget_created"}}`, true},
		{"type schema replaces built-in", "", map[string]string{"change": widgetSchema}, `{"notification":{"type":"change"},"widget_id":"wdg_1"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := provisionKindsHandler(t, tt.schema, tt.typeSchemas)
			_, _, _, err := checkSample(t, h, []byte(tt.body))
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("body %s: error = %v, want error %v", tt.body, err, tt.wantErr)
			}
		})
	}
}

func TestSchemaOptionErrors(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "not-json.json")
	if err := os.WriteFile(notJSON, []byte(`{"type": "object",`), 0o600); err != nil {
		t.Fatal(err)
	}
	badSchema := filepath.Join(dir, "bad-schema.json")
	if err := os.WriteFile(badSchema, []byte(`{"type": "widget"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")

	tests := []struct {
		name        string
		schema      string
		typeSchemas map[string]string
		wantInError string
	}{
		{"unknown built-in name", "smart_invites", nil, "unknown built-in schema"},
		{"missing route file", missing, nil, missing},
		{"route file not JSON", notJSON, nil, notJSON},
		{"route file invalid schema", badSchema, nil, badSchema},
		{"missing type file", "", map[string]string{"widget": missing}, missing},
		{"type file invalid schema", "", map[string]string{"widget": badSchema}, `"widget"`},
		{"schema with type schemas", "real_time_scheduling", map[string]string{"widget": badSchema}, "cannot be combined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := &Handler{Secrets: []string{"kinds-test-secret"}, Schema: tt.schema, TypeSchemas: tt.typeSchemas}
			err := h.Provision(ctx)
			if err == nil {
				t.Fatalf("Provision(schema=%q, type_schemas=%v) succeeded, want error", tt.schema, tt.typeSchemas)
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("error %q does not mention %q", err, tt.wantInError)
			}
		})
	}
}

// writeWidgetSchema writes a user schema for a made-up callback kind that
// requires a widget_id starting with wdg_, and returns its path.
func writeWidgetSchema(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "widget.json")
	err := os.WriteFile(file, []byte(`{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"type": "object",
		"required": ["widget_id"],
		"properties": {"widget_id": {"type": "string", "pattern": "^wdg_"}}
	}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return file
}
