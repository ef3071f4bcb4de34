-- wrk script for tools/harness/bench.py: one request shape, from the environment.
-- BENCH_PATH and BENCH_BODY may hold {id}, replaced per request by a random
-- integer in [BENCH_ID_MIN, BENCH_ID_MAX], and {word}, by one of the words of
-- BENCH_WORDS (separated by spaces); BENCH_TOKEN adds a bearer token;
-- BENCH_IDEMPOTENCY_KEYS a new Idempotency-Key to each request, as careful clients send.
-- At the end, the figures go to BENCH_OUT as JSON (latencies in microseconds).
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local token = os.getenv("BENCH_TOKEN")
local low = tonumber(os.getenv("BENCH_ID_MIN") or "1")
local high = tonumber(os.getenv("BENCH_ID_MAX") or "1")
local keyed = os.getenv("BENCH_IDEMPOTENCY_KEYS")
local words = {}
for word in string.gmatch(os.getenv("BENCH_WORDS") or "", "%S+") do
  table.insert(words, word)
end

local headers = {}
if body then headers["Content-Type"] = "application/json" end
if token then headers["Authorization"] = "Bearer " .. token end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

local sent, run_id = 0, nil
function init(args)
  math.randomseed(os.time() * 1000 + seed)
  -- a run's keys never meet an earlier run's: the start time is in each
  run_id = string.format("%d-%d-%08x", os.time(), seed, math.random(0, 0x7fffffff))
end

function request()
  local id = tostring(math.random(low, high))
  if keyed then
    sent = sent + 1
    headers["Idempotency-Key"] = run_id .. "-" .. sent
  end
  local this_body = nil
  if body then this_body = (body:gsub("{id}", id)) end
  local this_path = path:gsub("{id}", id)
  if #words > 0 then this_path = this_path:gsub("{word}", words[math.random(#words)]) end
  return wrk.format(method, this_path, headers, this_body)
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  local errors = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, ' ..
    '"p95": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
  out:close()
end
