#!/usr/bin/env bash
# Load test of the cronofy_callback guard in a real Caddy, on loopback only.
#
# It builds ./cmd/caddy and bench/loadtool, starts a counting upstream and
# one Caddy with two sites in front of it:
#   A  reverse_proxy alone
#   B  cronofy_callback + reverse_proxy
# and drives both with wrk and the same signed Smart Invite example
# (testdata/smart_invite.json, 906 bytes), alternating A and B in every
# round. It then measures floods of unsigned and wrongly signed requests
# against B, checks that an unsigned request gets its response before its
# body is sent, and records the peak resident memory (VmHWM) of a fresh Caddy
# while many clients upload bodies of max_body_size.
#
# Usage: bench/load.sh
#
# Environment (defaults in brackets):
#   ROUNDS [5]           A/B throughput rounds (0 skips them, as 0 does
#                        for the other round counts)
#   DURATION [10]        seconds per wrk run
#   CONNECTIONS [32]     wrk connections for the throughput rounds
#   THREADS [2]          wrk threads
#   LATENCY_ROUNDS [3]   A/B rounds with LATENCY_CONNECTIONS connections
#   LATENCY_CONNECTIONS [1]
#   FLOOD_ROUNDS [2]     rounds of A valid, B unsigned, B wrongly signed
#   MEM_CLIENTS [200]    concurrent uploads in the memory test
#   MEM_DURATION [10]    seconds per memory run
#   LIMIT [262144]       max_body_size of B and size of the memory test body
#   MEM_GOMEMLIMIT []    GOMEMLIMIT of the Caddy in the memory test, such as
#                        160MiB; empty leaves the Go runtime's default
#   OUT [a new /tmp/cronofy-load.* folder]  where results are written
#   PROFILE [0]          1 takes a CPU profile of Caddy during one more B
#                        run and a heap profile halfway through each first
#                        memory run, through an admin endpoint on a free
#                        loopback port, and writes the top functions to $OUT
#
# Needs go, curl and wrk; wrk is installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
LATENCY_ROUNDS=${LATENCY_ROUNDS:-3}
LATENCY_CONNECTIONS=${LATENCY_CONNECTIONS:-1}
FLOOD_ROUNDS=${FLOOD_ROUNDS:-2}
MEM_CLIENTS=${MEM_CLIENTS:-200}
MEM_DURATION=${MEM_DURATION:-10}
MEM_GOMEMLIMIT=${MEM_GOMEMLIMIT:-}
LIMIT=${LIMIT:-262144}
PROFILE=${PROFILE:-0}

# check_range NAME VALUE MIN MAX rejects a setting outside its bounds, so
# every loop and run below has a known length.
check_range() {
	if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
		echo "load.sh: $1=$2 is invalid, want an integer from $3 to $4" >&2
		exit 2
	fi
}
check_range ROUNDS "$ROUNDS" 0 50
check_range DURATION "$DURATION" 1 120
check_range CONNECTIONS "$CONNECTIONS" 1 2000
check_range THREADS "$THREADS" 1 16
check_range LATENCY_ROUNDS "$LATENCY_ROUNDS" 0 50
check_range LATENCY_CONNECTIONS "$LATENCY_CONNECTIONS" 1 100
check_range FLOOD_ROUNDS "$FLOOD_ROUNDS" 0 50
check_range MEM_CLIENTS "$MEM_CLIENTS" 1 2000
check_range MEM_DURATION "$MEM_DURATION" 1 120
check_range LIMIT "$LIMIT" 4096 16777216
check_range PROFILE "$PROFILE" 0 1
if [[ -n $MEM_GOMEMLIMIT && ! $MEM_GOMEMLIMIT =~ ^[0-9]+(B|KiB|MiB|GiB)?$ ]]; then
	echo "load.sh: MEM_GOMEMLIMIT=$MEM_GOMEMLIMIT is invalid, want a size such as 160MiB" >&2
	exit 2
fi

if ! command -v wrk >/dev/null; then
	echo "load.sh: installing wrk" >&2
	apt-get update
	apt-get install -y wrk
fi

OUT=${OUT:-$(mktemp -d /tmp/cronofy-load.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/cronofy-load-work.XXXXXX)
SECRET="load-test-client-secret-$RANDOM$RANDOM"
export LOAD_SECRET=$SECRET LOAD_LIMIT=$LIMIT

PIDS=()
CADDY_PID=
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# wait_http URL waits up to 10 s for URL to respond with any status.
wait_http() {
	local i
	for i in $(seq 1 100); do
		if curl -s -o /dev/null --max-time 1 "$1"; then
			return 0
		fi
		sleep 0.1
	done
	echo "load.sh: $1 did not respond within 10 s" >&2
	exit 1
}

# field LINE KEY prints the value of KEY=value in a RESULT line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# kib_status PID KEY prints a /proc/PID/status value such as VmHWM in KiB.
kib_status() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

upstream_requests() { curl -s --max-time 5 "http://127.0.0.1:$UPSTREAM_PORT/stats" | sed -n 's/^requests=\([0-9]*\).*/\1/p'; }

# run_wrk LABEL URL BODY SIGNATURE CONNECTIONS SECONDS runs wrk, keeps its
# output in $OUT and prints the RESULT line.
run_wrk() {
	local label=$1 url=$2 body=$3 signature=$4 connections=$5 seconds=$6
	local threads=$((THREADS < connections ? THREADS : connections))
	WRK_BODY_FILE=$body WRK_SIGNATURE=$signature \
		timeout $((seconds + 60)) wrk -t "$threads" -c "$connections" -d "${seconds}s" --timeout 10s \
		-s bench/post.lua "$url" >"$OUT/wrk-$label.txt" 2>&1 || true
	local result
	result=$(grep '^RESULT' "$OUT/wrk-$label.txt" || true)
	if [[ -z $result ]]; then
		echo "load.sh: wrk run $label printed no RESULT line; see $OUT/wrk-$label.txt" >&2
		exit 1
	fi
	echo "$result"
}

# start_caddy starts a new Caddy with $WORK/Caddyfile and waits for it.
# Variables assigned before the call, such as GOMEMLIMIT, reach Caddy.
start_caddy() {
	"$WORK/caddy" run --config "$WORK/Caddyfile" --adapter caddyfile >>"$WORK/caddy.log" 2>&1 &
	CADDY_PID=$!
	PIDS+=("$CADDY_PID")
	wait_http "http://127.0.0.1:$PORT_A/"
	wait_http "http://127.0.0.1:$PORT_B/"
}

# stop_caddy stops the current Caddy and removes its process id from PIDS,
# so the cleanup never signals another process that reused the id.
stop_caddy() {
	kill "$CADDY_PID"
	wait "$CADDY_PID" 2>/dev/null || true
	local pid kept=()
	for pid in "${PIDS[@]}"; do
		[[ $pid == "$CADDY_PID" ]] || kept+=("$pid")
	done
	PIDS=("${kept[@]}")
}

log "building Caddy and loadtool"
go build -o "$WORK/caddy" ./cmd/caddy
go build -o "$WORK/loadtool" ./bench/loadtool

"$WORK/loadtool" upstream -port-file "$WORK/upstream.port" &
PIDS+=($!)
for _ in $(seq 1 100); do
	[[ -s $WORK/upstream.port ]] && break
	sleep 0.1
done
UPSTREAM_PORT=$(cat "$WORK/upstream.port")
mapfile -t PORTS < <("$WORK/loadtool" freeports 3)
PORT_A=${PORTS[0]} PORT_B=${PORTS[1]} PORT_ADMIN=${PORTS[2]}
ADMIN=off
((PROFILE == 1)) && ADMIN="127.0.0.1:$PORT_ADMIN"
URL_A="http://127.0.0.1:$PORT_A/cronofy/smart-invite"
URL_B="http://127.0.0.1:$PORT_B/cronofy/smart-invite"

# Both sites share one process, so they see the same machine load. The
# admin endpoint is off, or on a free port with PROFILE=1, so Caddy leaves
# the tests' admin port alone. Logs go to a file at the default level, as
# in a production setup.
cat >"$WORK/Caddyfile" <<EOF
{
	admin $ADMIN
	auto_https off
}

http://127.0.0.1:$PORT_A {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$UPSTREAM_PORT
}

http://127.0.0.1:$PORT_B {
	bind 127.0.0.1
	cronofy_callback {
		secret {env.LOAD_SECRET}
		max_body_size {\$LOAD_LIMIT}
	}
	reverse_proxy 127.0.0.1:$UPSTREAM_PORT
}
EOF

"$WORK/loadtool" body >"$WORK/invite.json"
"$WORK/loadtool" body -size "$LIMIT" >"$WORK/limit.json"
head -c 1048576 /dev/zero | tr '\0' 'x' >"$WORK/1mib.txt"
SIGNATURE=$("$WORK/loadtool" sign -secret "$SECRET" "$WORK/invite.json")
WRONG_SIGNATURE=$("$WORK/loadtool" sign -secret "not-$SECRET" "$WORK/invite.json")
LIMIT_SIGNATURE=$("$WORK/loadtool" sign -secret "$SECRET" "$WORK/limit.json")
LIMIT_WRONG_SIGNATURE=$("$WORK/loadtool" sign -secret "not-$SECRET" "$WORK/limit.json")

start_caddy

# A signed request must pass B and an unsigned one must not, or the
# numbers below would measure the wrong path.
curl_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
status=$(curl_status -H 'Content-Type: application/json' -H "Cronofy-HMAC-SHA256: $SIGNATURE" --data-binary @"$WORK/invite.json" "$URL_B")
[[ $status == 200 ]] || { echo "load.sh: signed request to B got $status, want 200" >&2; exit 1; }
status=$(curl_status -H 'Content-Type: application/json' --data-binary @"$WORK/invite.json" "$URL_B")
[[ $status == 401 ]] || { echo "load.sh: unsigned request to B got $status, want 401" >&2; exit 1; }

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc: $(nproc)"
	echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "go: $(go version)"
	echo "wrk: $(wrk -v 2>&1 | head -1)"
	echo "loadavg before: $(cat /proc/loadavg)"
	echo "settings: MEM_GOMEMLIMIT=${MEM_GOMEMLIMIT:-unset} ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS LATENCY_ROUNDS=$LATENCY_ROUNDS LATENCY_CONNECTIONS=$LATENCY_CONNECTIONS FLOOD_ROUNDS=$FLOOD_ROUNDS MEM_CLIENTS=$MEM_CLIENTS MEM_DURATION=$MEM_DURATION LIMIT=$LIMIT"
	echo "body: $(wc -c <"$WORK/invite.json") bytes"
} | tee "$OUT/machine.txt"

log "warm-up"
run_wrk warmup-A "$URL_A" "$WORK/invite.json" "$SIGNATURE" "$CONNECTIONS" 2 >/dev/null
run_wrk warmup-B "$URL_B" "$WORK/invite.json" "$SIGNATURE" "$CONNECTIONS" 2 >/dev/null

# Every result row: phase round variant rps p50_ms p99_ms non2xx socket_errors
RESULTS="$OUT/results.tsv"
printf 'phase\tround\tvariant\trps\tp50_ms\tp99_ms\tnon2xx\tsocket_errors\n' >"$RESULTS"
record() {
	local phase=$1 round=$2 variant=$3 line=$4
	local errors=$(($(field "$line" connect_errors) + $(field "$line" read_errors) + $(field "$line" write_errors) + $(field "$line" timeouts)))
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$round" "$variant" \
		"$(field "$line" rps)" "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" "$(field "$line" non2xx)" "$errors" >>"$RESULTS"
	printf '%-10s round %-2s %-10s rps=%-9s p50=%sms p99=%sms non2xx=%s socket_errors=%s\n' "$phase" "$round" "$variant" \
		"$(field "$line" rps)" "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" "$(field "$line" non2xx)" "$errors" >&2
}

# ab_rounds PHASE ROUNDS CONNECTIONS alternates the order of A and B from
# one round to the next, so a drift in machine load hits both alike.
ab_rounds() {
	local phase=$1 rounds=$2 connections=$3 round variant
	for round in $(seq 1 "$rounds"); do
		local order=(A B)
		((round % 2 == 0)) && order=(B A)
		for variant in "${order[@]}"; do
			local url=$URL_A
			[[ $variant == B ]] && url=$URL_B
			record "$phase" "$round" "$variant" \
				"$(run_wrk "$phase-$round-$variant" "$url" "$WORK/invite.json" "$SIGNATURE" "$connections" "$DURATION")"
		done
	done
}

if ((ROUNDS > 0)); then
	log "throughput: $ROUNDS rounds of A and B, $CONNECTIONS connections, ${DURATION}s each"
	ab_rounds throughput "$ROUNDS" "$CONNECTIONS"
fi
if ((LATENCY_ROUNDS > 0)); then
	log "latency: $LATENCY_ROUNDS rounds of A and B, $LATENCY_CONNECTIONS connections"
	ab_rounds latency "$LATENCY_ROUNDS" "$LATENCY_CONNECTIONS"
fi

if ((PROFILE == 1)); then
	log "profile: CPU profile of Caddy during one B run"
	curl -s --max-time $((DURATION + 30)) -o "$OUT/cpu-B.prof" \
		"http://127.0.0.1:$PORT_ADMIN/debug/pprof/profile?seconds=$DURATION" &
	profile_pid=$!
	sleep 0.5
	record profile 1 B "$(run_wrk profile-B "$URL_B" "$WORK/invite.json" "$SIGNATURE" "$CONNECTIONS" "$DURATION")"
	wait "$profile_pid" || true
	go tool pprof -top -nodecount 40 "$WORK/caddy" "$OUT/cpu-B.prof" >"$OUT/cpu-B-top.txt" 2>&1 || true
	go tool pprof -top -cum -nodecount 60 "$WORK/caddy" "$OUT/cpu-B.prof" >"$OUT/cpu-B-cum.txt" 2>&1 || true
fi

# Floods go to B; the upstream's request counter must not move.
FLOOD_LEAKS=0
if ((FLOOD_ROUNDS > 0)); then
	log "floods: $FLOOD_ROUNDS rounds of A valid, B unsigned, B wrongly signed"
	for round in $(seq 1 "$FLOOD_ROUNDS"); do
		record flood "$round" A_valid "$(run_wrk "flood-$round-A" "$URL_A" "$WORK/invite.json" "$SIGNATURE" "$CONNECTIONS" "$DURATION")"
		for variant in unsigned wrong_sig; do
			signature=
			[[ $variant == wrong_sig ]] && signature=$WRONG_SIGNATURE
			before=$(upstream_requests)
			record flood "$round" "B_$variant" "$(run_wrk "flood-$round-$variant" "$URL_B" "$WORK/invite.json" "$signature" "$CONNECTIONS" "$DURATION")"
			after=$(upstream_requests)
			if ((after != before)); then
				echo "load.sh: $((after - before)) $variant requests reached the upstream" >&2
				FLOOD_LEAKS=$((FLOOD_LEAKS + after - before))
			fi
		done
	done
fi

log "unsigned 1 MiB request: response before the body is sent"
before=$(upstream_requests)
# A failed probe is reported, not fatal, so the memory test still runs.
PROBE_PLAIN=$("$WORK/loadtool" probe -addr "127.0.0.1:$PORT_B" -path /cronofy/smart-invite -size 1048576 2>&1) || PROBE_PLAIN="FAILED: $PROBE_PLAIN"
PROBE_EXPECT=$("$WORK/loadtool" probe -addr "127.0.0.1:$PORT_B" -path /cronofy/smart-invite -size 1048576 -expect 2>&1) || PROBE_EXPECT="FAILED: $PROBE_EXPECT"
CURL_EXPECT=$(curl -s -o /dev/null --max-time 10 -w 'status=%{http_code} size_upload=%{size_upload}' \
	-H 'Content-Type: application/json' -H 'Expect: 100-continue' --data-binary @"$WORK/1mib.txt" "$URL_B")
after=$(upstream_requests)
{
	echo "probe without Expect: $PROBE_PLAIN"
	echo "probe with Expect: 100-continue: $PROBE_EXPECT"
	echo "curl with Expect: 100-continue, 1 MiB: $CURL_EXPECT"
	echo "upstream requests during the probes: $((after - before))"
	echo "unsigned or wrongly signed requests that reached the upstream during floods: $FLOOD_LEAKS"
} | tee "$OUT/unsigned.txt"
stop_caddy

# memory_run LABEL URL SIGNATURE starts a fresh Caddy, sends a few small
# requests, then MEM_CLIENTS concurrent uploads of $WORK/limit.json, and
# records idle and peak VmHWM in KiB. A fourth argument of 2 runs the load
# twice, which shows whether the second run reuses what the first allocated.
memory_run() {
	local label=$1 url=$2 signature=$3 repeat=${4:-1}
	if [[ -n $MEM_GOMEMLIMIT ]]; then
		GOMEMLIMIT=$MEM_GOMEMLIMIT start_caddy
	else
		start_caddy
	fi
	run_wrk "mem-$label-warm" "$url" "$WORK/invite.json" "$SIGNATURE" 2 1 >/dev/null
	local idle peaks=() run line
	idle=$(kib_status "$CADDY_PID" VmHWM)
	if ((PROFILE == 1)); then
		(
			sleep $((MEM_DURATION / 2))
			curl -s --max-time 10 -o "$OUT/heap-$label.prof" "http://127.0.0.1:$PORT_ADMIN/debug/pprof/heap"
		) &
		heap_pid=$!
	fi
	for run in $(seq 1 "$repeat"); do
		line=$(run_wrk "mem-$label-$run" "$url" "$WORK/limit.json" "$signature" "$MEM_CLIENTS" "$MEM_DURATION")
		peaks+=("$(kib_status "$CADDY_PID" VmHWM)")
		printf 'memory %-22s run %s rps=%s non2xx=%s VmHWM=%s KiB\n' "$label" "$run" "$(field "$line" rps)" "$(field "$line" non2xx)" "${peaks[-1]}" >&2
	done
	if ((PROFILE == 1)); then
		wait "$heap_pid" || true
		# alloc_objects counts every allocation since the start, so the
		# readKnownLength row is the number of body buffers allocated.
		go tool pprof -sample_index=alloc_objects -top -nodecount 15 "$WORK/caddy" "$OUT/heap-$label.prof" >"$OUT/heap-$label-allocs.txt" 2>&1 || true
		go tool pprof -sample_index=inuse_space -top -nodecount 15 "$WORK/caddy" "$OUT/heap-$label.prof" >"$OUT/heap-$label-inuse.txt" 2>&1 || true
	fi
	stop_caddy
	printf '%s\t%s\t%s\n' "$label" "$idle" "${peaks[*]}" >>"$OUT/memory.tsv"
}

log "memory: $MEM_CLIENTS concurrent uploads of $LIMIT bytes, ${MEM_DURATION}s, fresh Caddy each, GOMEMLIMIT=${MEM_GOMEMLIMIT:-unset}"
printf 'label\tidle_VmHWM_KiB\tpeak_VmHWM_KiB_per_run\n' >"$OUT/memory.tsv"
# Wrongly signed uploads are the most memory a client without the client
# secret can make the guard hold: each is read into a pooled buffer and
# rejected. Unsigned ones are rejected before their body is read. Signed
# bodies are also parsed, which only Cronofy can cause.
memory_run bare_proxy "$URL_A" "$LIMIT_SIGNATURE"
memory_run guard_wrong_sig "$URL_B" "$LIMIT_WRONG_SIGNATURE" 2
memory_run guard_unsigned "$URL_B" ""
memory_run guard_signed "$URL_B" "$LIMIT_SIGNATURE"

echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "caddy log lines: $(wc -l <"$WORK/caddy.log")" | tee -a "$OUT/machine.txt"

# Summary: medians over rounds, and the median of the per-round B/A ratios.
summarize() {
	awk -F'\t' -v limit="$LIMIT" -v clients="$MEM_CLIENTS" '
	function median(values, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && values[j-1] > values[j]; j--) { t = values[j]; values[j] = values[j-1]; values[j-1] = t }
		return n % 2 ? values[(n+1)/2] : (values[n/2] + values[n/2+1]) / 2
	}
	FNR == 1 { next }
	FILENAME ~ /results.tsv$/ {
		key = $1 SUBSEP $3
		n[key]++; rps[key, n[key]] = $4; p50[key, n[key]] = $5; p99[key, n[key]] = $6
		byround[$1, $2, $3] = $4; p99round[$1, $2, $3] = $6; rounds[$1] = $2 > rounds[$1] ? $2 : rounds[$1]
		seen[$1, $3] = 1; phases[$1] = 1
	}
	FILENAME ~ /memory.tsv$/ { memory[++m] = $0 }
	END {
		for (phase in phases) {
			printf "%s (medians over %d rounds)\n", phase, rounds[phase]
			printf "  %-12s %10s %10s %10s\n", "variant", "req/s", "p50 ms", "p99 ms"
			split("A B A_valid B_unsigned B_wrong_sig", variants, " ")
			for (v = 1; v <= 5; v++) {
				key = phase SUBSEP variants[v]
				if (!(key in n)) continue
				k = n[key]
				for (i = 1; i <= k; i++) { a[i] = rps[key, i]; b[i] = p50[key, i]; c[i] = p99[key, i] }
				printf "  %-12s %10.0f %10.3f %10.3f\n", variants[v], median(a, k), median(b, k), median(c, k)
			}
			if ((phase, "A") in seen && (phase, "B") in seen) {
				k = 0
				for (r = 1; r <= rounds[phase]; r++) { k++; ratio[k] = byround[phase, r, "B"] / byround[phase, r, "A"]; added[k] = p99round[phase, r, "B"] - p99round[phase, r, "A"] }
				printf "  B/A req/s ratio, median of rounds: %.3f; p99 added, median of rounds: %.3f ms\n", median(ratio, k), median(added, k)
			}
			if ((phase, "A_valid") in seen) {
				for (fv = 1; fv <= 2; fv++) {
					name = fv == 1 ? "B_unsigned" : "B_wrong_sig"
					k = 0
					for (r = 1; r <= rounds[phase]; r++) { k++; ratio[k] = byround[phase, r, name] / byround[phase, r, "A_valid"] }
					printf "  %s / A_valid req/s, median of rounds: %.2f\n", name, median(ratio, k)
				}
			}
		}
		print "memory (VmHWM in MiB; bound = limit x clients)"
		bound = limit * clients / 1048576
		for (i = 1; i <= m; i++) {
			split(memory[i], parts, "\t"); np = split(parts[3], peaks, " ")
			printf "  %-16s idle %6.1f  peak", parts[1], parts[2] / 1024
			for (j = 1; j <= np; j++) printf " %6.1f", peaks[j] / 1024
			printf "  peak - idle %6.1f  bound %6.1f\n", (peaks[np] - parts[2]) / 1024, bound
		}
	}' "$RESULTS" "$OUT/memory.tsv"
}
summarize | tee "$OUT/summary.txt"
echo "results in $OUT" >&2
