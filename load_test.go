package cronofy

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mixedLoadVariable names the environment variable that enables
// TestCaddyMixedLoad and sets how many callbacks it sends per replay
// store, so that go test ./... stays fast.
const mixedLoadVariable = "CRONOFY_MIXED_LOAD"

// mixedLoadDeadline bounds each run of TestCaddyMixedLoad. The workers
// stop at it even if they have not sent every callback.
const mixedLoadDeadline = 2 * time.Minute

// Kinds of callbacks in the mixed load.
const (
	kindValid     = "valid"
	kindForged    = "forged"    // signed with a secret the guard does not list
	kindTampered  = "tampered"  // signed, then changed
	kindUnsigned  = "unsigned"  // no signature header
	kindReplay    = "replay"    // a body already delivered, sent again
	kindDuplicate = "duplicate" // a new body sent twice at the same time
)

// mixedOutcome is what one callback of the mixed load got.
type mixedOutcome struct {
	kind     string
	body     []byte
	statuses []int // one per request sent; 0 for one without a response
	elapsed  time.Duration
}

// mixedLoad drives the mixed load against one guard.
type mixedLoad struct {
	url    string
	client *http.Client
	total  int64

	next atomic.Int64

	mu        sync.Mutex
	delivered [][]byte // bodies whose delivery got 200, for replays
	outcomes  []mixedOutcome
}

// kindOf returns the kind of callback number n: half are valid, and a
// tenth each are forged, tampered, unsigned, replays and duplicates.
func kindOf(n int64) string {
	switch n % 10 {
	case 5:
		return kindForged
	case 6:
		return kindTampered
	case 7:
		return kindUnsigned
	case 8:
		return kindReplay
	case 9:
		return kindDuplicate
	default:
		return kindValid
	}
}

func (l *mixedLoad) run(deadline time.Time) {
	for time.Now().Before(deadline) {
		n := l.next.Add(1)
		if n > l.total {
			return
		}
		outcome := l.send(n)

		l.mu.Lock()
		l.outcomes = append(l.outcomes, outcome)
		l.mu.Unlock()
	}
}

// send sends callback number n as its kind requires.
func (l *mixedLoad) send(n int64) (outcome mixedOutcome) {
	body := []byte(strings.Replace(smartInviteBody, "si_e2e_1", fmt.Sprintf("si_mixed_%07d", n), 1))
	outcome = mixedOutcome{kind: kindOf(n), body: body}
	start := time.Now()
	defer func() { outcome.elapsed = time.Since(start) }()

	switch outcome.kind {
	case kindValid:
		status := l.post(body, signatureFor(firstSecret, body))
		outcome.statuses = []int{status}
		if status == http.StatusOK {
			l.remember(body)
		}

	case kindForged:
		outcome.statuses = []int{l.post(body, signatureFor(forgedSecret, body))}

	case kindTampered:
		signature := signatureFor(firstSecret, body)
		tampered := []byte(strings.Replace(string(body), `"accepted"`, `"declined"`, 1))
		outcome.body = tampered
		outcome.statuses = []int{l.post(tampered, signature)}

	case kindUnsigned:
		outcome.statuses = []int{l.post(body, "")}

	case kindReplay:
		l.mu.Lock()
		if len(l.delivered) == 0 {
			l.mu.Unlock()
			outcome.kind = kindValid
			outcome.statuses = []int{l.post(body, signatureFor(firstSecret, body))}
			return outcome
		}
		outcome.body = l.delivered[int(n)%len(l.delivered)]
		l.mu.Unlock()
		outcome.statuses = []int{l.post(outcome.body, signatureFor(firstSecret, outcome.body))}

	case kindDuplicate:
		signature := signatureFor(firstSecret, body)
		statuses := make([]int, 2)
		var both sync.WaitGroup
		for i := range statuses {
			both.Go(func() { statuses[i] = l.post(body, signature) })
		}
		both.Wait()
		// Cronofy retries a 409 later, and the retry must get 200
		// without being forwarded.
		if slices.Contains(statuses, http.StatusConflict) {
			statuses = append(statuses, l.post(body, signature))
		}
		outcome.statuses = statuses
	}
	return outcome
}

// post sends body with signature, or unsigned when signature is empty,
// and returns the status, or 0 if no attempt got a response.
func (l *mixedLoad) post(body []byte, signature string) int {
	for range maxAttempts {
		status, err := postLoadCallback(l.client, l.url, body, signature)
		if err == nil {
			return status
		}
	}
	return 0
}

func (l *mixedLoad) remember(body []byte) {
	l.mu.Lock()
	l.delivered = append(l.delivered, body)
	l.mu.Unlock()
}

// mixedFigures counts the outcomes of a mixed load run.
type mixedFigures struct {
	sent              map[string]int
	forgedAccepted    int // a forged, tampered or unsigned callback not rejected with 401, or forwarded
	validRejected     int // a valid callback without a 200 response
	replayWrongStatus int // a replay or duplicate with a status other than 200 or 409
	replayForward     int // a body forwarded more than once
	lostValid         int // a valid callback with a 200 response that never reached the upstream
	noResponse        int // requests that got no response in maxAttempts attempts
	conflicts         int // duplicates rejected with 409 while the first was in flight
}

func countMixed(outcomes []mixedOutcome, delivered map[string]int) mixedFigures {
	figures := mixedFigures{sent: make(map[string]int)}
	for _, outcome := range outcomes {
		figures.sent[outcome.kind]++
		count := delivered[string(outcome.body)]
		for _, status := range outcome.statuses {
			if status == 0 {
				figures.noResponse++
			}
		}

		switch outcome.kind {
		case kindForged, kindTampered, kindUnsigned:
			if outcome.statuses[0] != http.StatusUnauthorized || count > 0 {
				figures.forgedAccepted++
			}
		case kindValid:
			if outcome.statuses[0] != http.StatusOK {
				figures.validRejected++
			} else if count == 0 {
				figures.lostValid++
			}
			if count > 1 {
				figures.replayForward++
			}
		case kindReplay:
			if outcome.statuses[0] != http.StatusOK {
				figures.replayWrongStatus++
			}
		case kindDuplicate:
			for _, status := range outcome.statuses {
				switch status {
				case http.StatusOK:
				case http.StatusConflict:
					figures.conflicts++
				default:
					figures.replayWrongStatus++
				}
			}
			// The last request is a retry after a 409, or one of two
			// that both got 200: it must have got 200.
			if last := outcome.statuses[len(outcome.statuses)-1]; last != http.StatusOK {
				figures.replayWrongStatus++
			}
			if count == 0 {
				figures.lostValid++
			}
			if count > 1 {
				figures.replayForward++
			}
		}
	}
	return figures
}

// TestCaddyMixedLoad sends a bounded mix of valid, forged, tampered,
// unsigned, replayed and concurrently duplicated callbacks through a
// guard with replay_window, once per replay store, and counts every
// misclassification. It runs only when CRONOFY_MIXED_LOAD is set to the
// number of callbacks per store; CRONOFY_MIXED_LOAD_WORKERS sets the
// number of concurrent senders (default 8).
func TestCaddyMixedLoad(t *testing.T) {
	total, err := strconv.ParseInt(os.Getenv(mixedLoadVariable), 10, 64)
	if err != nil || total <= 0 {
		t.Skipf("set %s to the number of callbacks to send, such as 20000", mixedLoadVariable)
	}
	workers := 8
	if value := os.Getenv(mixedLoadVariable + "_WORKERS"); value != "" {
		workers, err = strconv.Atoi(value)
		if err != nil || workers < 1 || workers > 64 {
			t.Fatalf("%s_WORKERS=%q: want a number from 1 to 64", mixedLoadVariable, value)
		}
	}

	stores := []struct {
		name    string
		options []string
	}{
		{name: "memory", options: replayOptions},
		{name: "storage", options: append(replayOptions, "replay_storage")},
	}
	for _, store := range stores {
		t.Run(store.name, func(t *testing.T) {
			upstream := newRecordingUpstream(t)
			storage := "\tstorage file_system " + t.TempDir()
			server := startCaddyWithOptions(t, storage, guardSite(upstream, store.options...))

			transport := &http.Transport{MaxIdleConnsPerHost: 2 * workers}
			load := &mixedLoad{
				url:    server.url(callbackPath),
				client: &http.Client{Transport: transport, Timeout: 10 * time.Second},
				total:  total,
			}
			defer transport.CloseIdleConnections()

			start := time.Now()
			deadline := start.Add(mixedLoadDeadline)
			var senders sync.WaitGroup
			for range workers {
				senders.Go(func() { load.run(deadline) })
			}
			senders.Wait()
			elapsed := time.Since(start)

			delivered := make(map[string]int)
			for _, request := range upstream.received() {
				delivered[string(request.Body)]++
			}
			figures := countMixed(load.outcomes, delivered)

			var latencies []time.Duration
			requests := 0
			for _, outcome := range load.outcomes {
				requests += len(outcome.statuses)
				if outcome.kind == kindValid {
					latencies = append(latencies, outcome.elapsed)
				}
			}
			slices.Sort(latencies)

			t.Logf("store %s: %d callbacks (%d requests) from %d workers in %v, %.0f requests/s",
				store.name, len(load.outcomes), requests, workers, elapsed.Round(time.Millisecond), float64(requests)/elapsed.Seconds())
			t.Logf("sent: %v; upstream received %d; duplicates answered 409 while in flight: %d",
				figures.sent, len(upstream.received()), figures.conflicts)
			if len(latencies) > 0 {
				t.Logf("valid callback latency: p50 %v, p99 %v, max %v",
					latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1])
			}
			t.Logf("forged accepted %d, valid rejected %d, replay forwarded %d, replay with a wrong status %d, valid lost %d, no response %d",
				figures.forgedAccepted, figures.validRejected, figures.replayForward, figures.replayWrongStatus, figures.lostValid, figures.noResponse)

			if int64(len(load.outcomes)) != total {
				t.Errorf("sent %d callbacks within %v, want %d", len(load.outcomes), mixedLoadDeadline, total)
			}
			checks := []struct {
				name  string
				count int
			}{
				{"forged callbacks accepted", figures.forgedAccepted},
				{"valid callbacks rejected", figures.validRejected},
				{"replays forwarded", figures.replayForward},
				{"replays with a wrong status", figures.replayWrongStatus},
				{"valid callbacks lost", figures.lostValid},
				{"requests without a response", figures.noResponse},
			}
			for _, check := range checks {
				if check.count != 0 {
					t.Errorf("%s: %d, want 0", check.name, check.count)
				}
			}
		})
	}
}
