-- wrk script for bench/load.sh: POSTs one body with the headers Cronofy
-- sends and prints one RESULT line that the script parses.
--
-- Environment:
--   WRK_BODY_FILE  the body to send (required)
--   WRK_SIGNATURE  the Cronofy-HMAC-SHA256 value; empty sends none

local body_file = os.getenv("WRK_BODY_FILE")
local signature = os.getenv("WRK_SIGNATURE") or ""

local file = assert(io.open(body_file, "rb"), "cannot open WRK_BODY_FILE " .. tostring(body_file))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
if signature ~= "" then
  wrk.headers["Cronofy-HMAC-SHA256"] = signature
end

-- Latency percentiles are in microseconds. wrk counts any status other
-- than 2xx or 3xx in errors.status.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
