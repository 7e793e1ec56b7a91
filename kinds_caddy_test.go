package cronofy

import (
	"fmt"
	"net/http"
	"testing"
)

// TestCaddyEveryKind protects one backend with one route per callback URL,
// as an integration with every kind of Cronofy callback would, and checks
// that each kind arrives with its headers and that a malformed one of each
// kind never arrives.
func TestCaddyEveryKind(t *testing.T) {
	upstream := newRecordingUpstream(t)
	widgetSchema := writeWidgetSchema(t)

	server := startCaddy(t, fmt.Sprintf(`	cronofy_callback /smart-invite {
		secret %[1]s
	}
	cronofy_callback /push {
		secret %[1]s
	}
	cronofy_callback /scheduler {
		secret %[1]s
	}
	cronofy_callback /booked {
		secret %[1]s
		schema real_time_scheduling
	}
	cronofy_callback /event-trigger {
		secret %[1]s
		schema event_trigger
	}
	cronofy_callback /conferencing {
		secret %[1]s
		schema conferencing_subscription
	}
	cronofy_callback /widgets {
		secret %[1]s
		schema_for widget_created %[2]s
		unknown_types reject
	}
	cronofy_callback /widget-route {
		secret %[1]s
		schema %[2]s
	}
	reverse_proxy %[3]s`, firstSecret, widgetSchema, upstream.addr()))

	tests := []struct {
		path        string
		file        string // in testdata/callbacks, or "" to use body
		body        string
		wantStatus  int
		wantHeaders map[string]string
	}{
		{path: "/smart-invite", body: smartInviteBody, wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "smart_invite",
			"X-Cronofy-Smart-Invite-Id":   "si_e2e_1",
			"X-Cronofy-Reply-Status":      "accepted",
		}},
		{path: "/push", file: "verification", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "verification",
			"X-Cronofy-Channel-Id":        "chn_6a8df5c5944f9501621a3083",
		}},
		{path: "/push", file: "change", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "change",
			"X-Cronofy-Channel-Id":        "chn_54cf7c7cb4ad4c1027000001",
			"X-Cronofy-Changes-Since":     "2026-08-25T20:06:29Z",
		}},
		{path: "/push", file: "profile_disconnected", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "profile_disconnected",
		}},
		{path: "/push", file: "profile_initial_sync_completed", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "profile_initial_sync_completed",
		}},
		{path: "/push", file: "conferencing_profile_disconnected", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Channel-Id": "chn_54cf7c7cb4ad4c1027000001",
		}},
		{path: "/push", file: "scheduling_conversation_joined", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Scheduling-Conversation-Id": "scv_55cfff7fb4af4c1027000005",
		}},
		{path: "/push", file: "scheduling_conversation_updated", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "scheduling_conversation_updated",
		}},
		{path: "/scheduler", file: "scheduling_request_time_chosen", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type":     "scheduling_request_time_chosen",
			"X-Cronofy-Scheduling-Request-Id": "srq_80f7fece4f37897d62d86d80",
		}},
		{path: "/booked", file: "real_time_scheduling", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Event-Id": "interview-42",
		}},
		{path: "/event-trigger", file: "event_trigger", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Event-Id": "board-meeting",
		}},
		{path: "/conferencing", file: "conferencing_subscription", wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "conferencing_assigned",
			"X-Cronofy-Event-Id":          "board-meeting",
		}},
		// An unknown type still passes on a route that allows it.
		{path: "/push", body: `{"notification":{"type":"calendar_sync_paused"},"channel":{"channel_id":"chn_1"}}`, wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "calendar_sync_paused",
		}},
		{path: "/widgets", body: `{"notification":{"type":"widget_created"},"widget_id":"wdg_7"}`, wantStatus: 200, wantHeaders: map[string]string{
			"X-Cronofy-Notification-Type": "widget_created",
		}},
		{path: "/widget-route", body: `{"widget_id":"wdg_8"}`, wantStatus: 200},

		// Malformed bodies of each kind, correctly signed.
		{path: "/smart-invite", body: `{"notification":{"type":"smart_invite"},"smart_invite":{"smart_invite_id":"si_1","callback_url":"u","recipient":{"email":"a@example.test","status":"maybe"}}}`, wantStatus: 422},
		{path: "/push", body: `{"notification":{"type":"change"},"channel":{"channel_id":"chn_1","callback_url":"u"}}`, wantStatus: 422},
		{path: "/push", body: `{"notification":{"type":"profile_disconnected"},"channel":{"channel_id":"cal_1","callback_url":"u"}}`, wantStatus: 422},
		{path: "/scheduler", body: `{"notification":{"type":"scheduling_request_time_chosen"},"scheduling_request":{"scheduling_request_id":"srq_1"}}`, wantStatus: 422},
		{path: "/booked", body: `{"event":{"event_id":"e1","start":{"time":"2026-07-27T10:00:00Z","tzid":"Mars/Olympus_Mons"}}}`, wantStatus: 422},
		{path: "/widgets", body: `{"notification":{"type":"widget_created"},"widget_id":"gadget_1"}`, wantStatus: 422},
		{path: "/widgets", body: `{"notification":{"type":"gadget_created"}}`, wantStatus: 422},
		{path: "/widget-route", body: `{"widget_id":42}`, wantStatus: 422},
	}

	for _, tt := range tests {
		body := []byte(tt.body)
		if tt.file != "" {
			body = readTestdata(t, "callbacks/"+tt.file+".json")
		}
		c := signed(firstSecret, body)
		c.path = tt.path
		name := tt.path + " " + tt.file
		if tt.file == "" {
			name = tt.path + " " + tt.body
		}

		t.Run(name, func(t *testing.T) {
			before := len(upstream.received())
			resp, reply := server.send(t, c)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%v: got %d %q, want %d", c, resp.StatusCode, reply, tt.wantStatus)
			}

			received := upstream.received()
			if tt.wantStatus != http.StatusOK {
				if len(received) != before {
					t.Errorf("%v: rejected callback reached the upstream", c)
				}
				return
			}
			if len(received) != before+1 {
				t.Fatalf("%v: upstream received %d requests, want %d", c, len(received), before+1)
			}
			got := received[len(received)-1]
			if string(got.Body) != string(body) {
				t.Errorf("%v: upstream body = %q, want the sent bytes", c, got.Body)
			}
			for name, want := range tt.wantHeaders {
				if value := got.Header.Get(name); value != want {
					t.Errorf("%v: upstream header %s = %q, want %q", c, name, value, want)
				}
			}
		})
	}
}
