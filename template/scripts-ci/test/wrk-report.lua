-- wrk script of performance-test.sh: spreads the requests over the paths in PERF_PATHS
-- (comma-separated, appended to the URL's own path) and, when the run ends, writes
-- wrk's summary as JSON to the file named by PERF_RAW. Latencies are in microseconds.

local prefix = (wrk.path or "/"):gsub("/$", "")
local paths = {}
for path in string.gmatch(os.getenv("PERF_PATHS") or "/", "[^,]+") do
  table.insert(paths, prefix .. path)
end
local counter = 0
-- API_TOKEN: a bearer token for every request (protected paths), read here rather than
-- passed on wrk's command line, where every user of the machine could read it.
local token = os.getenv("API_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end

done = function(summary, latency, requests)
  local errors = summary.errors
  local out = assert(io.open(os.getenv("PERF_RAW"), "w"))
  out:write(string.format(
    '{"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, ' ..
    '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}, ' ..
    '"latency_us": {"min": %.0f, "mean": %.1f, "max": %.0f, "p50": %.0f, "p90": %.0f, "p95": %.0f, "p99": %.0f}}\n',
    summary.duration, summary.requests, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99)))
  out:close()
end
