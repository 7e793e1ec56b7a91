package cronofy

import (
	"slices"
	"strings"
)

// callbackKind is a kind of Cronofy callback with a built-in schema in
// schemas/<name>.json and the values the handler reads from its body.
type callbackKind struct {
	name   string
	fields fieldSet
}

// builtinKinds lists every built-in schema by name. The names of push
// notification and Smart Invite kinds are also their notification types.
var builtinKinds = map[string]*callbackKind{
	"smart_invite": {fields: fieldSet{
		fields: concat(
			[]field{
				{placeholder: "smart_invite_id", header: "X-Cronofy-Smart-Invite-Id", path: []string{"smart_invite", "smart_invite_id"}, log: logAlways},
				{placeholder: "callback_url", path: []string{"smart_invite", "callback_url"}},
			},
			replyFields("recipient", "X-Cronofy-Recipient", "smart_invite", "recipient"),
			replyFields("reply", "X-Cronofy-Reply", "smart_invite", "reply"),
		),
		lists: []listField{{
			placeholder: "recipients",
			path:        []string{"smart_invite", "recipients"},
			members:     replyFields("", ""),
		}},
	}},

	"verification":                      {fields: channelFields()},
	"change":                            {fields: channelFields(field{placeholder: "changes_since", header: "X-Cronofy-Changes-Since", path: []string{"notification", "changes_since"}, log: logAlways})},
	"profile_disconnected":              {fields: channelFields()},
	"profile_initial_sync_completed":    {fields: channelFields()},
	"conferencing_profile_disconnected": {fields: channelFields()},
	"scheduling_conversation_joined":    {fields: channelFields(schedulingConversationField)},
	"scheduling_conversation_updated":   {fields: channelFields(schedulingConversationField)},

	"scheduling_request": {fields: fieldSet{
		fields: concat(
			[]field{
				{placeholder: "triggered_at", path: []string{"notification", "triggered_at"}},
				{placeholder: "scheduling_request_id", header: "X-Cronofy-Scheduling-Request-Id", path: []string{"scheduling_request", "scheduling_request_id"}, log: logAlways},
				{placeholder: "slot_selection", path: []string{"scheduling_request", "slot_selection"}},
				{placeholder: "summary", path: []string{"scheduling_request", "summary"}},
			},
			eventFields("scheduling_request", "event"),
		),
		lists: []listField{{
			placeholder: "recipients",
			path:        []string{"scheduling_request", "recipients"},
			members: []field{
				{placeholder: "email", path: []string{"email"}},
				{placeholder: "display_name", path: []string{"display_name"}},
			},
		}},
	}},

	"real_time_scheduling": {fields: fieldSet{
		fields: concat(
			eventFields("event"),
			[]field{{placeholder: "user.tzid", path: []string{"user", "tzid"}}},
		),
		lists: []listField{{
			placeholder: "participants",
			path:        []string{"participants"},
			members:     []field{{placeholder: "sub", path: []string{"sub"}}},
		}},
	}},
	"event_trigger":             {fields: fieldSet{fields: eventFields("event")}},
	"conferencing_subscription": {fields: fieldSet{fields: eventFields("event")}},
}

func init() {
	for name, kind := range builtinKinds {
		kind.name = name
		kind.fields.setKeys()
	}
}

// schedulingRequestPrefix starts every embedded scheduler notification
// type (scheduling_request_time_chosen and others); all of them share the
// scheduling_request schema.
const schedulingRequestPrefix = "scheduling_request_"

// fixedOnlyKinds are the kinds of callbacks without a notification type
// to choose them by, which a route selects with the schema option.
var fixedOnlyKinds = []string{"scheduling_request", "real_time_scheduling", "event_trigger", "conferencing_subscription"}

// builtinKindForType returns the built-in kind whose schema applies to a
// notification type.
func builtinKindForType(notificationType string) (*callbackKind, bool) {
	if strings.HasPrefix(notificationType, schedulingRequestPrefix) {
		return builtinKinds["scheduling_request"], true
	}
	if slices.Contains(fixedOnlyKinds, notificationType) {
		return nil, false
	}
	kind, ok := builtinKinds[notificationType]
	return kind, ok
}

// builtinKindNames returns the names of the built-in schemas, sorted.
func builtinKindNames() []string {
	names := make([]string, 0, len(builtinKinds))
	for name := range builtinKinds {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

var schedulingConversationField = field{
	placeholder: "scheduling_conversation_id",
	header:      "X-Cronofy-Scheduling-Conversation-Id",
	path:        []string{"notification", "scheduling_conversation_id"},
	log:         logAlways,
}

// channelFields returns the fields of a push notification: those of its
// channel plus extra.
func channelFields(extra ...field) fieldSet {
	return fieldSet{fields: concat(
		[]field{
			{placeholder: "channel_id", header: "X-Cronofy-Channel-Id", path: []string{"channel", "channel_id"}, log: logAlways},
			{placeholder: "callback_url", path: []string{"channel", "callback_url"}},
		},
		extra,
	)}
}

// eventFields returns the fields of an event object at path.
func eventFields(path ...string) []field {
	at := func(rest ...string) []string {
		return append(slices.Clone(path), rest...)
	}

	fields := []field{
		{placeholder: "event.event_id", header: "X-Cronofy-Event-Id", path: at("event_id"), log: logAlways},
		{placeholder: "event.event_uid", path: at("event_uid")},
		{placeholder: "event.summary", path: at("summary")},
	}
	for _, end := range []string{"start", "end"} {
		// start and end are either a bare Time or an object with time
		// and tzid; lookup finds whichever form the body has.
		fields = append(fields,
			field{placeholder: "event." + end, path: at(end)},
			field{placeholder: "event." + end + ".time", path: at(end, "time")},
			field{placeholder: "event." + end + ".tzid", path: at(end, "tzid")},
		)
	}
	return fields
}

// replyFields returns the fields of a Smart Invite recipient or reply
// object found at path. headerStem is "" for objects whose values are only
// placeholders, such as the members of the recipients array.
func replyFields(name, headerStem string, path ...string) []field {
	at := func(rest ...string) []string {
		return append(slices.Clone(path), rest...)
	}
	header := func(suffix string) string {
		if headerStem == "" {
			return ""
		}
		return headerStem + suffix
	}
	prefix := name
	if prefix != "" {
		prefix += "."
	}

	fields := []field{
		{placeholder: prefix + "email", header: header("-Email"), path: at("email"), log: logEmail},
		{placeholder: prefix + "status", header: header("-Status"), path: at("status"), log: logAlways},
		{placeholder: prefix + "comment", path: at("comment")},
	}
	for _, end := range []string{"start", "end"} {
		for _, member := range []string{"time", "tzid"} {
			fields = append(fields, field{
				placeholder: prefix + "proposal." + end + "." + member,
				path:        at("proposal", end, member),
			})
		}
	}
	return fields
}

func concat(lists ...[]field) []field {
	var all []field
	for _, list := range lists {
		all = append(all, list...)
	}
	return all
}
