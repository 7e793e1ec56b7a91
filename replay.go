package cronofy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// DefaultReplayMaxEntries bounds the in-memory replay store. Each entry
// costs about 100 bytes, so the default stays under about 10 MB.
const DefaultReplayMaxEntries = 100_000

// replayStoragePrefix is the key prefix of replay entries in Caddy's storage.
const replayStoragePrefix = "cronofy_callback/replay/"

// replayKey identifies a body: the SHA-256 of its bytes. Cronofy signs
// nothing but the body, so two deliveries with the same bytes are
// indistinguishable, and the key is not the HMAC so that the store holds
// nothing derived from a client secret.
type replayKey [sha256.Size]byte

func newReplayKey(body []byte) replayKey {
	return sha256.Sum256(body)
}

// replayStore remembers the bodies whose delivery succeeded until their
// window ends.
type replayStore interface {
	// seen reports whether key was delivered and has not expired.
	seen(ctx context.Context, key replayKey, now time.Time) (bool, error)
	// remember records a delivery of key, made at now, that expires at
	// expiry.
	remember(ctx context.Context, key replayKey, now, expiry time.Time) error
}

// replayGuard rejects bodies already delivered inside the window and
// tracks the ones being delivered right now.
type replayGuard struct {
	window time.Duration
	store  replayStore

	mu       sync.Mutex
	inFlight map[replayKey]struct{}
}

func newReplayGuard(window time.Duration, store replayStore) *replayGuard {
	return &replayGuard{window: window, store: store, inFlight: make(map[replayKey]struct{})}
}

// replayState is the outcome of checking a body against the guard.
type replayState int

const (
	replayNew      replayState = iota // forward it
	replayDone                        // delivered before inside the window
	replayInFlight                    // an identical body is being delivered now
)

// begin checks key and, for a new body, marks it in flight; the caller
// must then call finish.
func (g *replayGuard) begin(ctx context.Context, key replayKey, now time.Time) (replayState, error) {
	g.mu.Lock()
	if _, busy := g.inFlight[key]; busy {
		g.mu.Unlock()
		return replayInFlight, nil
	}
	g.inFlight[key] = struct{}{}
	g.mu.Unlock()

	seen, err := g.store.seen(ctx, key, now)
	if err != nil || seen {
		g.release(key)
		if err != nil {
			return replayNew, err
		}
		return replayDone, nil
	}
	return replayNew, nil
}

// finish records the delivery when the upstream accepted it, and clears
// the in-flight mark either way, so a failed delivery can be retried.
func (g *replayGuard) finish(ctx context.Context, key replayKey, delivered bool, now time.Time) error {
	defer g.release(key)
	if !delivered {
		return nil
	}
	return g.store.remember(ctx, key, now, now.Add(g.window))
}

func (g *replayGuard) release(key replayKey) {
	g.mu.Lock()
	delete(g.inFlight, key)
	g.mu.Unlock()
}

// memoryReplayStore keeps entries in a map with a queue in expiry order.
// Every entry has the same window, so insertion order is expiry order and
// the oldest entry is always at the front.
type memoryReplayStore struct {
	mu         sync.Mutex
	maxEntries int
	expiries   map[replayKey]time.Time
	queue      []replayEntry
}

type replayEntry struct {
	key    replayKey
	expiry time.Time
}

func newMemoryReplayStore(maxEntries int) *memoryReplayStore {
	return &memoryReplayStore{maxEntries: maxEntries, expiries: make(map[replayKey]time.Time)}
}

func (s *memoryReplayStore) seen(_ context.Context, key replayKey, now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	expiry, ok := s.expiries[key]
	return ok && now.Before(expiry), nil
}

// remember adds key after dropping expired entries, then the oldest ones
// while the store is full. Dropping an unexpired entry only lets a replay
// of that body through, so the bound never costs a genuine callback.
func (s *memoryReplayStore) remember(_ context.Context, key replayKey, now, expiry time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	for len(s.queue) > 0 {
		front := s.queue[0]
		if now.Before(front.expiry) && len(s.expiries) < s.maxEntries {
			break
		}
		s.queue = s.queue[1:]
		// A key remembered again has a newer entry further back.
		if s.expiries[front.key].Equal(front.expiry) {
			delete(s.expiries, front.key)
		}
	}

	s.expiries[key] = expiry
	s.queue = append(s.queue, replayEntry{key: key, expiry: expiry})
	return nil
}

// storageReplayStore keeps entries in Caddy's configured storage, so that
// several Caddy instances sharing that storage share replay defence.
type storageReplayStore struct {
	storage certmagic.Storage
}

func storageKey(key replayKey) string {
	return replayStoragePrefix + hex.EncodeToString(key[:])
}

func (s *storageReplayStore) seen(ctx context.Context, key replayKey, now time.Time) (bool, error) {
	value, err := s.storage.Load(ctx, storageKey(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	unixNano, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil {
		// An unreadable entry is treated as absent: forwarding a replay
		// is safer than losing a genuine callback.
		return false, nil
	}
	return now.Before(time.Unix(0, unixNano)), nil
}

func (s *storageReplayStore) remember(ctx context.Context, key replayKey, _, expiry time.Time) error {
	return s.storage.Store(ctx, storageKey(key), []byte(strconv.FormatInt(expiry.UnixNano(), 10)))
}

// sweep deletes expired entries from storage. Entries are also ignored
// once expired, so sweeping only reclaims space.
func (s *storageReplayStore) sweep(ctx context.Context, now time.Time, logger *zap.Logger) {
	keys, err := s.storage.List(ctx, replayStoragePrefix, false)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logger.Warn("listing replay entries failed", zap.Error(err))
		}
		return
	}
	deleted := 0
	for _, key := range keys {
		value, err := s.storage.Load(ctx, key)
		if err != nil {
			continue
		}
		unixNano, err := strconv.ParseInt(string(value), 10, 64)
		if err == nil && now.Before(time.Unix(0, unixNano)) {
			continue
		}
		if err := s.storage.Delete(ctx, key); err == nil {
			deleted++
		}
	}
	if deleted > 0 {
		logger.Debug("deleted expired replay entries", zap.Int("count", deleted))
	}
}

// statusRecorder records the final status code that the next handler
// wrote, to tell a delivered callback from a failed one.
type statusRecorder struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	// 1xx responses are interim; the final status comes later.
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriterWrapper.Write(p)
}

// delivered reports whether the upstream accepted the callback: Cronofy
// counts any 2xx response as delivered and retries everything else.
func (w *statusRecorder) delivered(err error) bool {
	return err == nil && w.status >= 200 && w.status < 300
}
