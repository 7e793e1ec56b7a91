package cronofy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone check must not depend on the host's zone files
)

// smartInviteTree returns the published Smart Invite example, without its
// trailing comma, parsed the way the handler parses a body.
func smartInviteTree(t *testing.T) map[string]any {
	t.Helper()

	body, err := os.ReadFile("testdata/smart_invite.json")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := parseObject(body, DefaultMaxDepth)
	if err != nil {
		t.Fatalf("parseObject(testdata/smart_invite.json): %v", err)
	}
	return tree
}

// setPath sets the member at the dotted path. Every parent object must
// already exist.
func setPath(t *testing.T, tree map[string]any, path string, value any) {
	t.Helper()

	parent, key := parentOf(t, tree, path)
	parent[key] = value
}

// deletePath removes the member at the dotted path.
func deletePath(t *testing.T, tree map[string]any, path string) {
	t.Helper()

	parent, key := parentOf(t, tree, path)
	if _, ok := parent[key]; !ok {
		t.Fatalf("delete %s: no such member", path)
	}
	delete(parent, key)
}

func parentOf(t *testing.T, tree map[string]any, path string) (map[string]any, string) {
	t.Helper()

	keys := strings.Split(path, ".")
	parent := tree
	for _, key := range keys[:len(keys)-1] {
		next, ok := parent[key].(map[string]any)
		if !ok {
			t.Fatalf("path %s: %s is not an object", path, key)
		}
		parent = next
	}
	return parent, keys[len(keys)-1]
}

// encode returns tree as JSON for failure messages.
func encode(tree map[string]any) string {
	b, err := json.Marshal(tree)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// validateSmartInvite returns the describeSchemaError text of tree under the
// built-in Smart Invite schema, or "" when tree passes.
func validateSmartInvite(t *testing.T, tree map[string]any) string {
	t.Helper()

	schemas, err := compiledBuiltins()
	if err != nil {
		t.Fatalf("compiledBuiltins: %v", err)
	}
	schema, ok := schemas["smart_invite"]
	if !ok {
		t.Fatal("compiledBuiltins has no smart_invite schema")
	}
	if err := schema.schema.Validate(any(tree)); err != nil {
		return describeSchemaError(err)
	}
	return ""
}

// recipientCopy returns a fresh copy of the example's recipient object.
func recipientCopy(t *testing.T) map[string]any {
	t.Helper()
	return smartInviteTree(t)["smart_invite"].(map[string]any)["recipient"].(map[string]any)
}

func TestSmartInviteSchemaAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, tree map[string]any)
	}{
		{"published example", func(*testing.T, map[string]any) {}},
		{"status pending", setStatus("pending")},
		{"status accepted", setStatus("accepted")},
		{"status tentative", setStatus("tentative")},
		{"status declined", setStatus("declined")},
		{"recipients array instead of recipient", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient")
			second := recipientCopy(t)
			second["email"] = "second@example.com"
			second["status"] = "pending"
			delete(second, "comment")
			delete(second, "proposal")
			setPath(t, tree, "smart_invite.recipients", []any{recipientCopy(t), second})
		}},
		{"recipient and recipients", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipients", []any{recipientCopy(t)})
		}},
		{"comment null", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.comment", nil)
		}},
		{"comment absent", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient.comment")
		}},
		{"proposal null", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.proposal", nil)
		}},
		{"proposal absent", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient.proposal")
			deletePath(t, tree, "smart_invite.reply.proposal")
		}},
		{"time as date", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.proposal.start.time", "2026-04-21")
			setPath(t, tree, "smart_invite.recipient.proposal.end.time", "2026-04-22")
		}},
		{"time with Z", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.proposal.start.time", "2026-04-21T21:00:00Z")
			setPath(t, tree, "smart_invite.recipient.proposal.start.tzid", "Etc/UTC")
		}},
		{"time with negative offset", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.proposal.start.time", "2026-04-21T16:00:00-05:00")
			setPath(t, tree, "smart_invite.recipient.proposal.start.tzid", "America/Chicago")
		}},
		{"tzid Etc/UTC", setTZID("Etc/UTC")},
		{"tzid Europe/Paris", setTZID("Europe/Paris")},
		{"tzid America/Chicago", setTZID("America/Chicago")},
		{"reply absent", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.reply")
		}},
		{"reply email differs from recipient", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.reply.email", "delegate@example.com")
		}},
		{"end before start", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.proposal.start.time", "2026-04-22T10:00:00+02:00")
			setPath(t, tree, "smart_invite.recipient.proposal.end.time", "2026-04-21T10:00:00+02:00")
		}},
		{"unknown top-level property", setUnknown("")},
		{"unknown notification property", setUnknown("notification.")},
		{"unknown smart_invite property", setUnknown("smart_invite.")},
		{"unknown recipient property", setUnknown("smart_invite.recipient.")},
		{"unknown reply property", setUnknown("smart_invite.reply.")},
		{"unknown proposal property", setUnknown("smart_invite.recipient.proposal.")},
		{"unknown start property", setUnknown("smart_invite.recipient.proposal.start.")},
		{"unknown end property", setUnknown("smart_invite.reply.proposal.end.")},
		{"unknown recipients element property", func(t *testing.T, tree map[string]any) {
			member := recipientCopy(t)
			member["extra"] = "x"
			setPath(t, tree, "smart_invite.recipients", []any{member})
		}},
	}
	for _, tt := range tests {
		tree := smartInviteTree(t)
		tt.mutate(t, tree)
		if got := validateSmartInvite(t, tree); got != "" {
			t.Errorf("%s: body %s: got error %q, want accepted", tt.name, encode(tree), got)
		}
	}
}

func TestSmartInviteSchemaRejects(t *testing.T) {
	tests := []struct {
		name        string
		mutate      func(t *testing.T, tree map[string]any)
		wantPointer string // the JSON pointer the error names
	}{
		{"notification missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "notification")
		}, "/"},
		{"other notification type", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "notification.type", "change")
		}, "/notification/type"},
		{"smart_invite missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite")
		}, "/"},
		{"smart_invite_id missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.smart_invite_id")
		}, "/smart_invite"},
		{"smart_invite_id empty", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.smart_invite_id", "")
		}, "/smart_invite/smart_invite_id"},
		{"smart_invite_id a number", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.smart_invite_id", json.Number("42"))
		}, "/smart_invite/smart_invite_id"},
		{"smart_invite_id null", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.smart_invite_id", nil)
		}, "/smart_invite/smart_invite_id"},
		{"callback_url missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.callback_url")
		}, "/smart_invite"},
		{"callback_url a number", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.callback_url", json.Number("1"))
		}, "/smart_invite/callback_url"},
		{"neither recipient nor recipients", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient")
		}, "/smart_invite"},
		{"recipients not an array", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient")
			setPath(t, tree, "smart_invite.recipients", recipientCopy(t))
		}, "/smart_invite/recipients"},
		{"recipients element without email", func(t *testing.T, tree map[string]any) {
			member := recipientCopy(t)
			delete(member, "email")
			setPath(t, tree, "smart_invite.recipients", []any{recipientCopy(t), member})
		}, "/smart_invite/recipients/1"},
		{"email missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient.email")
		}, "/smart_invite/recipient"},
		{"email empty", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.email", "")
		}, "/smart_invite/recipient/email"},
		{"email with control character", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.email", "bell\u0007@example.com")
		}, "/smart_invite/recipient/email"},
		{"email with C1 control character", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.email", "next\u0085@example.com")
		}, "/smart_invite/recipient/email"},
		{"email with line break", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.reply.email", "a@example.com\r\nX-Injected: 1")
		}, "/smart_invite/reply/email"},
		{"email not a string", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.email", []any{"a@example.com"})
		}, "/smart_invite/recipient/email"},
		{"status maybe", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.status", "maybe")
		}, "/smart_invite/recipient/status"},
		{"status missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.reply.status")
		}, "/smart_invite/reply"},
		{"status upper case", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.status", "ACCEPTED")
		}, "/smart_invite/recipient/status"},
		{"comment a number", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.comment", json.Number("1"))
		}, "/smart_invite/recipient/comment"},
		{"time with fractional seconds", setStartTime("2026-04-21T23:00:00.5+02:00"), "/smart_invite/recipient/proposal/start/time"},
		{"time without offset", setStartTime("2026-04-21T23:00:00"), "/smart_invite/recipient/proposal/start/time"},
		{"time without seconds", setStartTime("2026-04-21T23:00+02:00"), "/smart_invite/recipient/proposal/start/time"},
		{"time with lower-case z", setStartTime("2026-04-21T21:00:00z"), "/smart_invite/recipient/proposal/start/time"},
		{"time with space separator", setStartTime("2026-04-21 23:00:00+02:00"), "/smart_invite/recipient/proposal/start/time"},
		{"time in month 13", setStartTime("2026-13-21T23:00:00+02:00"), "/smart_invite/recipient/proposal/start/time"},
		{"time on February 30", setStartTime("2026-02-30T23:00:00+02:00"), "/smart_invite/recipient/proposal/start/time"},
		{"time at hour 24", setStartTime("2026-04-21T24:00:00+02:00"), "/smart_invite/recipient/proposal/start/time"},
		{"date in month 13", setStartTime("2026-13-01"), "/smart_invite/recipient/proposal/start/time"},
		{"time a number", setStartTime(json.Number("1776805200")), "/smart_invite/recipient/proposal/start/time"},
		{"tzid Mars/Olympus", setTZID("Mars/Olympus"), "/smart_invite/recipient/proposal/start/tzid"},
		{"tzid empty", setTZID(""), "/smart_invite/recipient/proposal/start/tzid"},
		{"tzid wrong case", setTZID("europe/paris"), "/smart_invite/recipient/proposal/start/tzid"},
		{"tzid a number", setTZID(json.Number("2")), "/smart_invite/recipient/proposal/start/tzid"},
		{"tzid missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient.proposal.end.tzid")
		}, "/smart_invite/recipient/proposal/end"},
		{"time missing", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.reply.proposal.start.time")
		}, "/smart_invite/reply/proposal/start"},
		{"start missing from proposal", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.recipient.proposal.start")
		}, "/smart_invite/recipient/proposal"},
		{"end missing from proposal", func(t *testing.T, tree map[string]any) {
			deletePath(t, tree, "smart_invite.reply.proposal.end")
		}, "/smart_invite/reply/proposal"},
		{"proposal a string", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.recipient.proposal", "tomorrow")
		}, "/smart_invite/recipient/proposal"},
		{"reply not an object", func(t *testing.T, tree map[string]any) {
			setPath(t, tree, "smart_invite.reply", "accepted")
		}, "/smart_invite/reply"},
	}
	for _, tt := range tests {
		tree := smartInviteTree(t)
		tt.mutate(t, tree)

		got := validateSmartInvite(t, tree)
		if got == "" {
			t.Errorf("%s: body %s: got accepted, want an error at %s", tt.name, encode(tree), tt.wantPointer)
			continue
		}
		if !strings.HasPrefix(got, tt.wantPointer+":") {
			t.Errorf("%s: body %s: got error %q, want it to start with %q", tt.name, encode(tree), got, tt.wantPointer+":")
		}
	}
}

// TestDescribeSchemaErrorHidesValue checks that the reason given for a
// schema failure never quotes the value that failed, which is body content
// such as an email address.
func TestDescribeSchemaErrorHidesValue(t *testing.T) {
	tests := []struct {
		name string
		path string
		// value contains inputMarker and fails the schema at path.
		value any
	}{
		{"status", "smart_invite.recipient.status", inputMarker},
		{"email with control character", "smart_invite.recipient.email", inputMarker + "\u0007"},
		{"email not a string", "smart_invite.reply.email", map[string]any{inputMarker: inputMarker}},
		{"time", "smart_invite.recipient.proposal.start.time", inputMarker},
		{"time with offset marker", "smart_invite.recipient.proposal.end.time", "2026-04-21T23:00:00+" + inputMarker},
		{"tzid", "smart_invite.recipient.proposal.start.tzid", "Mars/" + inputMarker},
		{"notification type", "notification.type", inputMarker},
		{"smart_invite_id", "smart_invite.smart_invite_id", []any{inputMarker}},
		{"callback_url", "smart_invite.callback_url", map[string]any{inputMarker: true}},
		{"proposal", "smart_invite.recipient.proposal", inputMarker},
		{"comment", "smart_invite.recipient.comment", map[string]any{"text": inputMarker}},
	}
	for _, tt := range tests {
		tree := smartInviteTree(t)
		setPath(t, tree, tt.path, tt.value)

		got := validateSmartInvite(t, tree)
		if got == "" {
			t.Errorf("%s: body %s: got accepted, want an error", tt.name, encode(tree))
			continue
		}
		if strings.Contains(got, inputMarker) {
			t.Errorf("%s: body %s: error %q quotes the failing value", tt.name, encode(tree), got)
		}
	}
}

// TestZoneNamesLoad checks that every accepted tzid is a zone in Go's own
// copy of the IANA database, so a backend written in Go can load each one.
func TestZoneNamesLoad(t *testing.T) {
	names := strings.Fields(zoneNames)
	if len(names) < 400 {
		t.Fatalf("zoneNames has %d names, want the full IANA list (several hundred)", len(names))
	}

	for _, name := range names {
		if _, err := time.LoadLocation(name); err != nil {
			t.Errorf("time.LoadLocation(%q): %v", name, err)
		}
	}
}

func TestValidateTZID(t *testing.T) {
	tests := []struct {
		name   string
		wantOK bool
	}{
		{"Etc/UTC", true},
		{"Europe/Paris", true},
		{"America/Chicago", true},
		{"America/Argentina/Buenos_Aires", true},
		{"UTC", true},
		{"Mars/Olympus", false},
		{"", false},
		{"Local", false},
		{"Factory", false},
		{"Europe/Paris ", false},
		{"europe/paris", false},
		{"../Europe/Paris", false},
		{"+02:00", false},
	}
	for _, tt := range tests {
		err := validateTZID(tt.name)
		if got := err == nil; got != tt.wantOK {
			t.Errorf("validateTZID(%q): got error %v, want accepted = %t", tt.name, err, tt.wantOK)
		}
	}
}

func setStatus(status string) func(*testing.T, map[string]any) {
	return func(t *testing.T, tree map[string]any) {
		setPath(t, tree, "smart_invite.recipient.status", status)
		setPath(t, tree, "smart_invite.reply.status", status)
	}
}

func setTZID(tzid any) func(*testing.T, map[string]any) {
	return func(t *testing.T, tree map[string]any) {
		setPath(t, tree, "smart_invite.recipient.proposal.start.tzid", tzid)
	}
}

func setStartTime(value any) func(*testing.T, map[string]any) {
	return func(t *testing.T, tree map[string]any) {
		setPath(t, tree, "smart_invite.recipient.proposal.start.time", value)
	}
}

func setUnknown(prefix string) func(*testing.T, map[string]any) {
	return func(t *testing.T, tree map[string]any) {
		setPath(t, tree, prefix+"unknown_property", map[string]any{"nested": []any{json.Number("1"), nil}})
	}
}
