-- Bounds a wrk run in count (wrk's -d bounds it in time), counts statuses per class, and times
-- the run itself: wrk reports its full -d as the duration even when every thread stopped early
-- on its count, so each thread records when it started and when its last answer came, and the
-- rate is taken over that window (valid whether the run ended on its count or on its time).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec[1]")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec[0].tv_sec) * 1000000 + tonumber(timespec[0].tv_nsec) / 1000
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  answered, s2xx, s4xx, s5xx = 0, 0, 0, 0
  limit = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "1000000")
  started_us = now_us()
  last_us = started_us
end

function response(status, headers, body)
  answered = answered + 1
  last_us = now_us()
  if status >= 500 then s5xx = s5xx + 1 elseif status >= 400 then s4xx = s4xx + 1 else s2xx = s2xx + 1 end
  if answered >= per_thread_limit() then wrk.thread:stop() end
end

function per_thread_limit()
  return math.max(1, math.floor(limit / tonumber(os.getenv("BENCH_THREADS") or "1")))
end

function done(summary, latency, requests)
  local t2, t4, t5, answered_all = 0, 0, 0, 0
  local first, last = nil, nil
  for _, thread in ipairs(threads) do
    t2 = t2 + thread:get("s2xx"); t4 = t4 + thread:get("s4xx"); t5 = t5 + thread:get("s5xx")
    answered_all = answered_all + thread:get("answered")
    local started, ended = thread:get("started_us"), thread:get("last_us")
    if first == nil or started < first then first = started end
    if last == nil or ended > last then last = ended end
  end
  io.write(string.format("BENCH requests=%d answered=%d seconds=%.3f active_seconds=%.3f p50_us=%d p90_us=%d p99_us=%d max_us=%d s2xx=%d s4xx=%d s5xx=%d errors=%d\n",
    summary.requests, answered_all, summary.duration / 1e6, (last - first) / 1e6, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, t2, t4, t5,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
