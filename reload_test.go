package cronofy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// forgedSecret signs the forged callbacks of the load tests. No guard
// configuration lists it.
const forgedSecret = "CRN_e2eForgedSecret0aB1cD2eF3gH4iJ5kL6mN7"

// reloadConfig posts a Caddyfile to the admin API, as caddy reload does,
// and fails the test unless Caddy loads it. It returns how long the load
// took.
func reloadConfig(t *testing.T, config string) time.Duration {
	t.Helper()

	req, err := http.NewRequest(http.MethodPost, "http://localhost:2999/load", strings.NewReader(config))
	if err != nil {
		t.Fatalf("building the load request: %v", err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("posting the config to the admin API: %v", err)
	}
	defer resp.Body.Close()
	message, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the admin API response: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loading the config: got %d %q, want 200:\n%s", resp.StatusCode, message, config)
	}
	return time.Since(start)
}

// Phases of a client secret rotation, as Cronofy signs during each.
const (
	phaseOld      = iota // only the old client secret exists
	phaseRotating        // both exist: Cronofy sends both digests
	phaseNew             // only the new client secret is left
)

// loadResult is the outcome of one callback of a load test.
type loadResult struct {
	body   []byte
	forged bool
	phase  int
	status int     // of the last attempt; 0 if none got a response
	errs   []error // of the attempts that got no response
}

// maxAttempts bounds how often a load test sends a callback that got no
// response. Cronofy retries such a delivery later.
const maxAttempts = 3

// rotationLoad sends callbacks from a bounded number of goroutines until
// it is stopped or has sent maxRequests. Every fifth callback is forged;
// the others are signed as Cronofy signs in the current phase.
type rotationLoad struct {
	url         string
	client      *http.Client
	maxRequests int64

	sent      atomic.Int64
	completed atomic.Int64
	stop      chan struct{}
	workers   sync.WaitGroup

	// mu orders phase changes with the start of callbacks signed with
	// the old client secret only, so that the test can wait for the
	// last of them before it drops that secret.
	mu          sync.Mutex
	phase       int
	oldInFlight sync.WaitGroup

	resultsMu sync.Mutex
	results   []loadResult
}

// newRotationLoad starts the load. With keepAlive, the workers reuse
// idle connections, otherwise each request opens a new one.
func newRotationLoad(url string, workers int, maxRequests int64, keepAlive bool) *rotationLoad {
	transport := &http.Transport{MaxIdleConnsPerHost: workers, DisableKeepAlives: !keepAlive}
	load := &rotationLoad{
		url:         url,
		client:      &http.Client{Transport: transport, Timeout: 10 * time.Second},
		maxRequests: maxRequests,
		stop:        make(chan struct{}),
	}
	for range workers {
		load.workers.Add(1)
		go load.run()
	}
	return load
}

func (l *rotationLoad) run() {
	defer l.workers.Done()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		n := l.sent.Add(1)
		if n > l.maxRequests {
			return
		}
		l.send(n)
		l.completed.Add(1)
	}
}

// send sends callback number n, again after an attempt that got no
// response, and records its outcome.
func (l *rotationLoad) send(n int64) {
	body := []byte(strings.Replace(smartInviteBody, "si_e2e_1", fmt.Sprintf("si_load_%06d", n), 1))
	forged := n%5 == 0

	l.mu.Lock()
	phase := l.phase
	oldOnly := !forged && phase == phaseOld
	if oldOnly {
		l.oldInFlight.Add(1)
	}
	l.mu.Unlock()
	if oldOnly {
		defer l.oldInFlight.Done()
	}

	var signature string
	switch {
	case forged:
		signature = signatureFor(forgedSecret, body)
	case phase == phaseOld:
		signature = signatureFor(firstSecret, body)
	case phase == phaseRotating && n%2 == 0:
		signature = signatureFor(firstSecret, body) + "," + signatureFor(secondSecret, body)
	default:
		signature = signatureFor(secondSecret, body)
	}

	result := loadResult{body: body, forged: forged, phase: phase}
	for range maxAttempts {
		status, err := postLoadCallback(l.client, l.url, body, signature)
		result.status = status
		if err == nil {
			break
		}
		result.errs = append(result.errs, err)
	}

	l.resultsMu.Lock()
	l.results = append(l.results, result)
	l.resultsMu.Unlock()
}

// postLoadCallback sends a signed callback with client and returns the
// response status, or the error of an attempt that got no response.
func postLoadCallback(client *http.Client, url string, body []byte, signature string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(SignatureHeader, signature)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// setPhase switches the signatures of the callbacks sent from now on.
func (l *rotationLoad) setPhase(phase int) {
	l.mu.Lock()
	l.phase = phase
	l.mu.Unlock()
}

// waitCompleted waits until n more requests have completed, for 20
// seconds at most.
func (l *rotationLoad) waitCompleted(t *testing.T, n int64) {
	t.Helper()

	target := l.completed.Load() + n
	deadline := time.Now().Add(20 * time.Second)
	for l.completed.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests completed after 20s, want %d", l.completed.Load(), target)
		}
		if l.sent.Load() > l.maxRequests {
			t.Fatalf("load stopped at %d requests before %d completed", l.maxRequests, target)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finish stops the load and returns every result.
func (l *rotationLoad) finish() []loadResult {
	close(l.stop)
	l.workers.Wait()
	l.client.CloseIdleConnections()
	return l.results
}

// TestCaddyReloadRotation rotates the client secret as the README
// describes, reloading Caddy twice while callbacks keep arriving, and
// checks that no genuine callback is rejected or lost on the way and no
// forged one gets through.
//
// A reload can leave a few requests without any response, before any
// handler runs. Caddy on Linux binds a new socket with SO_REUSEPORT for
// each configuration and closes the old one, and the kernel resets the
// connections still queued on it. With keep-alive, the old server also
// closes its idle connections, racing requests just sent on them. Cronofy
// retries a delivery that got no response, and so does the load, up to
// maxAttempts times. The test counts these attempts, and the exactly-once
// check on the upstream shows that none of them reached the backend.
func TestCaddyReloadRotation(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep-alive=%t", keepAlive), func(t *testing.T) {
			testReloadRotation(t, keepAlive)
		})
	}
}

func testReloadRotation(t *testing.T, keepAlive bool) {
	const (
		workers     = 4
		maxRequests = 6000
		perPhase    = 300
	)
	upstream := newRecordingUpstream(t)
	ports := freePorts(t, 2)
	config := func(secrets ...string) string {
		lines := make([]string, len(secrets))
		for i, secret := range secrets {
			lines[i] = "secret " + secret
		}
		return caddyfileFor(ports[0], ports[1], "", guardSite(upstream, lines...))
	}
	tester := caddytest.NewTester(t)
	tester.InitServer(config(firstSecret), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	server := &caddyServer{tester: tester, port: ports[0]}

	start := time.Now()
	load := newRotationLoad(server.url(callbackPath), workers, maxRequests, keepAlive)
	finished := false
	defer func() {
		// Stops the workers when a step below fails the test.
		if !finished {
			load.finish()
		}
	}()

	load.waitCompleted(t, perPhase)
	addSecond := reloadConfig(t, config(firstSecret, secondSecret))
	load.setPhase(phaseRotating)
	load.waitCompleted(t, perPhase)

	load.setPhase(phaseNew)
	load.oldInFlight.Wait()
	dropFirst := reloadConfig(t, config(secondSecret))
	load.waitCompleted(t, perPhase)
	results := load.finish()
	finished = true
	elapsed := time.Since(start)

	delivered := make(map[string]int)
	for _, request := range upstream.received() {
		delivered[string(request.Body)]++
	}

	var valid, forged, rejected, lost, duplicated, forgedAccepted, forgedForwarded, retried, failed [3]int
	var firstErr error
	for _, result := range results {
		count := delivered[string(result.body)]
		if len(result.errs) > 0 {
			retried[result.phase]++
			if firstErr == nil {
				firstErr = result.errs[0]
			}
		}
		if result.status == 0 {
			failed[result.phase]++
			continue
		}
		if result.forged {
			forged[result.phase]++
			if result.status != http.StatusUnauthorized {
				forgedAccepted[result.phase]++
			}
			if count > 0 {
				forgedForwarded[result.phase]++
			}
			continue
		}
		valid[result.phase]++
		switch {
		case result.status != http.StatusOK:
			rejected[result.phase]++
		case count == 0:
			lost[result.phase]++
		case count > 1:
			duplicated[result.phase]++
		}
	}

	// In the log, A is firstSecret and B is secondSecret.
	t.Logf("%d workers, keep-alive %t: %d callbacks in %v; reload to [A, B] took %v, reload to [B] took %v",
		workers, keepAlive, len(results), elapsed.Round(time.Millisecond), addSecond.Round(time.Millisecond), dropFirst.Round(time.Millisecond))
	for phase, name := range []string{"A only", "A and B", "B only"} {
		t.Logf("phase %-7s: valid %4d (rejected %d, lost %d, forwarded twice %d), forged %4d (not 401 %d, forwarded %d), retried after no response %d, never answered %d",
			name, valid[phase], rejected[phase], lost[phase], duplicated[phase],
			forged[phase], forgedAccepted[phase], forgedForwarded[phase], retried[phase], failed[phase])
		if rejected[phase]+lost[phase]+duplicated[phase] > 0 {
			t.Errorf("phase %s: %d valid callbacks rejected, %d lost, %d forwarded twice, want none",
				name, rejected[phase], lost[phase], duplicated[phase])
		}
		if forgedAccepted[phase]+forgedForwarded[phase] > 0 {
			t.Errorf("phase %s: %d forged callbacks not answered 401, %d forwarded, want none",
				name, forgedAccepted[phase], forgedForwarded[phase])
		}
		if failed[phase] > 0 {
			t.Errorf("phase %s: %d callbacks got no response in %d attempts, want none", name, failed[phase], maxAttempts)
		}
	}
	if firstErr != nil {
		t.Logf("first attempt without a response: %v", firstErr)
	}
	if total, want := len(upstream.received()), valid[0]+valid[1]+valid[2]; total != want {
		t.Errorf("upstream received %d requests, want one per valid callback: %d", total, want)
	}
}
