package cronofy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The tests in this file check replay_window end to end: what Cronofy
// receives for a replayed, a retried and a concurrent duplicate body, and
// how the storage store shares deliveries between Caddy instances.

// replayBody returns a distinct Smart Invite body for a test case.
func replayBody(id string) []byte {
	return []byte(strings.Replace(smartInviteBody, "si_e2e_1", id, 1))
}

func TestCaddyReplayMemory(t *testing.T) {
	t.Run("replay answered without forwarding", func(t *testing.T) {
		upstream := newRecordingUpstream(t)
		server := startCaddy(t, guardSite(upstream, replayOptions...))
		c := signed(firstSecret, replayBody("si_replay_1"))

		resp, reply := server.send(t, c)
		if resp.StatusCode != http.StatusOK || reply != upstreamReply {
			t.Fatalf("%v: got %d %q, want 200 %q", c, resp.StatusCode, reply, upstreamReply)
		}
		resp, reply = server.send(t, c)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%v replayed: got %d %q, want 200", c, resp.StatusCode, reply)
		}
		if reply == upstreamReply {
			t.Errorf("%v replayed: got the upstream's response, want the guard's empty one", c)
		}
		if got := upstream.only(t); !bytes.Equal(got.Body, c.body) {
			t.Errorf("upstream body differs from the signed body:\ngot  %q\nwant %q", got.Body, c.body)
		}

		// Replay defence keys on the body only: a new body passes.
		other := signed(firstSecret, replayBody("si_replay_2"))
		if resp, reply := server.send(t, other); resp.StatusCode != http.StatusOK || reply != upstreamReply {
			t.Errorf("%v: got %d %q, want 200 %q", other, resp.StatusCode, reply, upstreamReply)
		}
	})

	t.Run("retry after a failed delivery", func(t *testing.T) {
		upstream := newFailingUpstream(t, 1, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "backend failure", http.StatusInternalServerError)
		})
		server := startCaddy(t, guardSite(&upstream.recordingUpstream, replayOptions...))
		c := signed(firstSecret, replayBody("si_replay_3"))

		statuses := []int{http.StatusInternalServerError, http.StatusOK, http.StatusOK}
		for i, want := range statuses {
			if resp, reply := server.send(t, c); resp.StatusCode != want {
				t.Fatalf("%v, delivery %d: got %d %q, want %d", c, i+1, resp.StatusCode, reply, want)
			}
		}
		// The third delivery is a replay of the second, which succeeded.
		if n := upstream.arrivals.Load(); n != 2 {
			t.Errorf("upstream received %d requests, want 2: the failed one and its retry", n)
		}
	})

	t.Run("duplicate while in flight", func(t *testing.T) {
		arrived := make(chan struct{})
		release := make(chan struct{})
		var upstream *failingUpstream
		upstream = newFailingUpstream(t, 1, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			upstream.record(w, r)
		})
		server := startCaddy(t, guardSite(&upstream.recordingUpstream, replayOptions...))
		c := signed(firstSecret, replayBody("si_replay_4"))

		// The first delivery runs on its own goroutine, which must not
		// call t.Fatal, and reports its status or error.
		firstStatus := make(chan string, 1)
		go func() {
			req, err := http.NewRequest(http.MethodPost, server.url(callbackPath), bytes.NewReader(c.body))
			if err != nil {
				firstStatus <- err.Error()
				return
			}
			req.Header.Set("Content-Type", c.contentTypeOrDefault())
			req.Header.Set(SignatureHeader, c.signature)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				firstStatus <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			firstStatus <- resp.Status
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the first delivery did not reach the upstream within 10s")
		}

		resp, reply := server.send(t, c)
		close(release)
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("%v while in flight: got %d %q, want 409", c, resp.StatusCode, reply)
		}
		if retry := resp.Header.Get("Retry-After"); retry == "" {
			t.Error("409 response has no Retry-After header")
		}
		if status := <-firstStatus; status != "200 OK" {
			t.Errorf("first delivery: got %q, want 200 OK", status)
		}

		if resp, reply := server.send(t, c); resp.StatusCode != http.StatusOK {
			t.Errorf("%v after the delivery: got %d %q, want 200", c, resp.StatusCode, reply)
		}
		if n := upstream.arrivals.Load(); n != 1 {
			t.Errorf("upstream received %d requests, want 1", n)
		}
	})
}

// startCaddySites loads a Caddyfile with one plain HTTP site per entry of
// sites, each on its own free port, and returns them in order.
func startCaddySites(t *testing.T, moreOptions string, sites ...string) []*caddyServer {
	t.Helper()

	ports := freePorts(t, len(sites)+1)
	config := caddyfileFor(ports[0], ports[len(sites)], moreOptions, sites[0])
	for i, site := range sites[1:] {
		config += fmt.Sprintf("\n:%d {\n%s\n}\n", ports[i+1], site)
	}

	tester := caddytest.NewTester(t)
	tester.InitServer(config, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	servers := make([]*caddyServer, len(sites))
	for i := range sites {
		servers[i] = &caddyServer{tester: tester, port: ports[i]}
	}
	return servers
}

// TestCaddyReplayStorage runs two guards that stand for two Caddy
// instances behind one load balancer: one test process can run only one
// Caddy, so they are two sites sharing the file storage of the
// configuration. A third site keeps its entries in memory as a control.
func TestCaddyReplayStorage(t *testing.T) {
	upstream := newRecordingUpstream(t)
	dir := t.TempDir()
	shared := guardSite(upstream, "secret "+firstSecret, "replay_window 1h", "replay_storage")
	memory := guardSite(upstream, replayOptions...)
	servers := startCaddySites(t, "\tstorage file_system "+dir, shared, shared, memory)
	first, second, control := servers[0], servers[1], servers[2]

	c := signed(firstSecret, replayBody("si_storage_1"))
	if resp, reply := first.send(t, c); resp.StatusCode != http.StatusOK || reply != upstreamReply {
		t.Fatalf("%v through instance 1: got %d %q, want 200 %q", c, resp.StatusCode, reply, upstreamReply)
	}
	resp, reply := second.send(t, c)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%v through instance 2: got %d %q, want 200", c, resp.StatusCode, reply)
	}
	if n := len(upstream.received()); n != 1 {
		t.Errorf("upstream received %d requests after instance 2, want 1", n)
	}

	key := newReplayKey(c.body)
	entry := filepath.Join(dir, filepath.FromSlash(replayStoragePrefix), hex.EncodeToString(key[:]))
	if _, err := os.Stat(entry); err != nil {
		t.Errorf("replay entry in the shared storage: %v", err)
	}

	// The in-memory store of another guard has not seen the body.
	if resp, reply := control.send(t, c); resp.StatusCode != http.StatusOK || reply != upstreamReply {
		t.Errorf("%v through the in-memory guard: got %d %q, want 200 %q", c, resp.StatusCode, reply, upstreamReply)
	}
	if n := len(upstream.received()); n != 2 {
		t.Errorf("upstream received %d requests after the in-memory guard, want 2", n)
	}

	// The other direction, with a new body.
	other := signed(firstSecret, replayBody("si_storage_2"))
	if resp, reply := second.send(t, other); resp.StatusCode != http.StatusOK || reply != upstreamReply {
		t.Fatalf("%v through instance 2: got %d %q, want 200 %q", other, resp.StatusCode, reply, upstreamReply)
	}
	if resp, reply := first.send(t, other); resp.StatusCode != http.StatusOK || reply == upstreamReply {
		t.Errorf("%v through instance 1: got %d %q, want 200 from the guard", other, resp.StatusCode, reply)
	}
	if n := len(upstream.received()); n != 3 {
		t.Errorf("upstream received %d requests in all, want 3", n)
	}
}

// TestCaddyReplayAcrossReload shows which store keeps its entries when the
// configuration changes, as it does during a client secret rotation: each
// reload provisions new handlers, and with them new in-memory stores.
func TestCaddyReplayAcrossReload(t *testing.T) {
	tests := []struct {
		name    string
		options []string
		// forwarded is whether the replay after the reload reaches the
		// upstream.
		forwarded bool
	}{
		{name: "memory", options: replayOptions, forwarded: true},
		{name: "storage", options: []string{"secret " + firstSecret, "replay_window 1h", "replay_storage"}, forwarded: false},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upstream := newRecordingUpstream(t)
			storage := "\tstorage file_system " + t.TempDir()
			server := startCaddyWithOptions(t, storage, guardSite(upstream, tc.options...))
			c := signed(firstSecret, replayBody("si_reload_"+tc.name))
			if resp, reply := server.send(t, c); resp.StatusCode != http.StatusOK {
				t.Fatalf("%v: got %d %q, want 200", c, resp.StatusCode, reply)
			}

			rotated := append([]string{"secret " + secondSecret}, tc.options...)
			reloaded := startCaddyWithOptions(t, storage, guardSite(upstream, rotated...))
			if resp, reply := reloaded.send(t, c); resp.StatusCode != http.StatusOK {
				t.Fatalf("%v after the reload: got %d %q, want 200", c, resp.StatusCode, reply)
			}

			want := 1
			if tc.forwarded {
				want = 2
			}
			if n := len(upstream.received()); n != want {
				t.Errorf("upstream received %d requests, want %d", n, want)
			}
		})
	}
}

// TestCaddyReplayClientGone drops the client's connection while Caddy
// copies a long upstream response to it, as Cronofy does when a delivery
// passes its response deadline. reverse_proxy then aborts the handler
// with a panic. Cronofy saw no complete response and retries, and the
// retry must reach the upstream instead of getting 409 forever.
func TestCaddyReplayClientGone(t *testing.T) {
	const responseSize = 8 << 20
	headerSent := make(chan struct{})
	clientGone := make(chan struct{})
	var upstream *failingUpstream
	upstream = newFailingUpstream(t, 1, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(responseSize))
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		close(headerSent)
		select {
		case <-clientGone:
		case <-time.After(10 * time.Second):
		}
		w.Write(make([]byte, responseSize))
	})
	// flush_interval -1 passes the response head on at once, so the
	// client can see it before the body is copied.
	server := startCaddy(t, fmt.Sprintf(`	cronofy_callback {
		secret %s
		replay_window 1h
	}
	reverse_proxy %s {
		flush_interval -1
	}`, firstSecret, upstream.addr()))
	body := replayBody("si_client_gone")

	conn, reader := server.dialSite(t, 10*time.Second)
	if _, err := io.WriteString(conn, server.postHead(len(body), signatureLine(firstSecret, body))+string(body)); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, err := http.ReadResponse(reader, nil)
	if err != nil {
		t.Fatalf("reading the response head: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want the upstream's 200", resp.StatusCode)
	}
	<-headerSent
	conn.Close()
	close(clientGone)

	// The retry gets 409 until Caddy has given up on the first
	// delivery, which takes a moment after the connection is gone.
	c := signed(firstSecret, body)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, reply := server.send(t, c)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusConflict || time.Now().After(deadline) {
			t.Fatalf("%v retried: got %d %q, want 200 within 5s", c, resp.StatusCode, reply)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := upstream.arrivals.Load(); n != 2 {
		t.Errorf("upstream received %d requests, want 2: the cut-off delivery and the retry", n)
	}
}
