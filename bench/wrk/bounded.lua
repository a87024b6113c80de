-- Bounds a wrk run in count (wrk's -d bounds it in time) and counts statuses per class.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  answered, s2xx, s4xx, s5xx = 0, 0, 0, 0
  limit = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "1000000")
end

function response(status, headers, body)
  answered = answered + 1
  if status >= 500 then s5xx = s5xx + 1 elseif status >= 400 then s4xx = s4xx + 1 else s2xx = s2xx + 1 end
  if answered >= per_thread_limit() then wrk.thread:stop() end
end

function per_thread_limit()
  return math.max(1, math.floor(limit / tonumber(os.getenv("BENCH_THREADS") or "1")))
end

function done(summary, latency, requests)
  local t2, t4, t5 = 0, 0, 0
  for _, thread in ipairs(threads) do
    t2 = t2 + thread:get("s2xx"); t4 = t4 + thread:get("s4xx"); t5 = t5 + thread:get("s5xx")
  end
  io.write(string.format("BENCH requests=%d seconds=%.3f p50_us=%d p90_us=%d p99_us=%d max_us=%d s2xx=%d s4xx=%d s5xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, t2, t4, t5,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
