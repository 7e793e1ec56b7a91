package cronofy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestReplayNextPanics covers reverse_proxy's reaction to an upstream
// that breaks off its response: it panics with http.ErrAbortHandler
// after the status line has gone out. The delivery failed, so Cronofy's
// retry must be forwarded again, neither rejected as in flight nor
// treated as a replay.
func TestReplayNextPanics(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) { h.ReplayWindow = caddy.Duration(time.Hour) })
	body := []byte(singleRecipientBody)

	aborting := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		panic(http.ErrAbortHandler)
	})
	func() {
		defer func() {
			if recovered := recover(); !errors.Is(asError(recovered), http.ErrAbortHandler) {
				t.Errorf("first delivery: recovered %v, want http.ErrAbortHandler passed on", recovered)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), newCallbackRequest(body), aborting)
	}()

	var rec forwarded
	err := h.ServeHTTP(httptest.NewRecorder(), newCallbackRequest(body), recordingNext(&rec))
	if err != nil {
		t.Fatalf("retry: got error %v (status %d), want it forwarded", err, handlerStatus(err))
	}
	if !rec.called {
		t.Fatal("retry not forwarded, want it forwarded")
	}
}

// asError returns a recovered panic value as an error, or nil.
func asError(recovered any) error {
	err, _ := recovered.(error)
	return err
}
