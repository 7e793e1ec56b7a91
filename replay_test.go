package cronofy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

var replayEpoch = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestReplayGuardStates(t *testing.T) {
	ctx := context.Background()
	g := newReplayGuard(time.Hour, newMemoryReplayStore(10))
	key := newReplayKey([]byte(`{"notification":{"type":"change"}}`))

	steps := []struct {
		name      string
		at        time.Duration
		action    string // "begin" or "finish-ok" or "finish-failed"
		wantState replayState
	}{
		{"first delivery starts", 0, "begin", replayNew},
		{"duplicate while in flight", time.Second, "begin", replayInFlight},
		{"first delivery fails", 2 * time.Second, "finish-failed", 0},
		{"retry after failure is forwarded", 3 * time.Second, "begin", replayNew},
		{"retry is delivered", 4 * time.Second, "finish-ok", 0},
		{"replay inside the window", 30 * time.Minute, "begin", replayDone},
		{"replay after the window", time.Hour + 5*time.Second, "begin", replayNew},
	}
	for _, step := range steps {
		now := replayEpoch.Add(step.at)
		switch step.action {
		case "begin":
			got, err := g.begin(ctx, key, now)
			if err != nil {
				t.Fatalf("%s: begin: %v", step.name, err)
			}
			if got != step.wantState {
				t.Errorf("%s: state = %d, want %d", step.name, got, step.wantState)
			}
		case "finish-ok", "finish-failed":
			if err := g.finish(ctx, key, step.action == "finish-ok", now); err != nil {
				t.Fatalf("%s: finish: %v", step.name, err)
			}
		}
	}
}

func TestMemoryReplayStoreBound(t *testing.T) {
	ctx := context.Background()
	s := newMemoryReplayStore(3)
	keys := make([]replayKey, 5)
	for i := range keys {
		keys[i] = newReplayKey(fmt.Appendf(nil, "body %d", i))
		now := replayEpoch.Add(time.Duration(i) * time.Second)
		if err := s.remember(ctx, keys[i], now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	if got := len(s.expiries); got != 3 {
		t.Errorf("entries = %d, want 3", got)
	}
	now := replayEpoch.Add(10 * time.Second)
	for i, key := range keys {
		seen, err := s.seen(ctx, key, now)
		if err != nil {
			t.Fatal(err)
		}
		// The two oldest bodies were dropped to keep the bound.
		if want := i >= 2; seen != want {
			t.Errorf("body %d seen = %v, want %v", i, seen, want)
		}
	}
}

func TestMemoryReplayStoreDropsExpired(t *testing.T) {
	ctx := context.Background()
	s := newMemoryReplayStore(100)
	old := newReplayKey([]byte("old"))
	if err := s.remember(ctx, old, replayEpoch, replayEpoch.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	later := replayEpoch.Add(2 * time.Minute)
	if err := s.remember(ctx, newReplayKey([]byte("new")), later, later.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, kept := s.expiries[old]; kept {
		t.Error("expired entry kept after a later remember")
	}
	if got := len(s.queue); got != 1 {
		t.Errorf("queue length = %d, want 1", got)
	}
}

func TestStorageReplayStore(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	// Two stores on one storage stand for two Caddy instances.
	first := &storageReplayStore{storage: storage}
	second := &storageReplayStore{storage: storage}
	key := newReplayKey([]byte(`{"notification":{"type":"verification"}}`))

	seen, err := second.seen(ctx, key, replayEpoch)
	if err != nil || seen {
		t.Fatalf("seen before any delivery = %v, %v; want false, nil", seen, err)
	}
	if err := first.remember(ctx, key, replayEpoch, replayEpoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seen, err := second.seen(ctx, key, replayEpoch.Add(time.Minute)); err != nil || !seen {
		t.Errorf("other instance seen = %v, %v; want true, nil", seen, err)
	}
	if seen, _ := second.seen(ctx, key, replayEpoch.Add(2*time.Hour)); seen {
		t.Error("entry seen after its window")
	}

	first.sweep(ctx, replayEpoch.Add(2*time.Hour), zap.NewNop())
	if storage.Exists(ctx, storageKey(key)) {
		t.Error("expired entry still in storage after sweep")
	}
}

func TestStatusRecorderDelivered(t *testing.T) {
	tests := []struct {
		status int
		write  bool
		want   bool
	}{
		{200, false, true},
		{204, false, true},
		{0, true, true}, // a body without WriteHeader means 200
		{100, false, false},
		{301, false, false},
		{500, false, false},
		{502, true, false},
	}
	for _, tt := range tests {
		recorder := newTestStatusRecorder()
		if tt.status != 0 {
			recorder.WriteHeader(tt.status)
		}
		if tt.write {
			recorder.Write([]byte("body"))
		}
		if got := recorder.delivered(nil); got != tt.want {
			t.Errorf("status %d, write %v: delivered = %v, want %v", tt.status, tt.write, got, tt.want)
		}
	}

	recorder := newTestStatusRecorder()
	recorder.WriteHeader(200)
	if recorder.delivered(fmt.Errorf("upstream failed")) {
		t.Error("delivered = true with a handler error")
	}
}

func TestReplayOptionsNeedWindow(t *testing.T) {
	tests := []struct {
		name    string
		handler Handler
	}{
		{"storage without window", Handler{Secrets: []string{"s"}, ReplayStorage: true}},
		{"max entries without window", Handler{Secrets: []string{"s"}, ReplayMaxEntries: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := tt.handler
			err := h.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), "need replay_window") {
				t.Errorf("Provision(%+v) error = %v, want one saying replay_window is needed", tt.handler, err)
			}
		})
	}
}
