-- wrk script for bench/bench_callbacks.py: sends prepared requests (one per line of the file given after "--":
-- "<path with query>\t<body>"), each once, in order. If the file runs out before the run ends, it starts over and
-- counts the repeats, so the bench can redo a round that repeated callbacks with more of them (the bot answers a
-- repeat as a duplicate, which costs less). done() prints one line the bench parses.
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  prepared = {}
  count = 0
  position = 0
  repeated = 0
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    count = count + 1
    prepared[count] = wrk.format("POST", line:sub(1, tab - 1), {["Content-Type"] = "text/xml"}, line:sub(tab + 1))
  end
end

request = function()
  position = position + 1
  if position > count then
    position = 1
    repeated = repeated + 1
  end
  return prepared[position]
end

done = function(summary, latency, requests)
  local repeats = 0
  for _, thread in ipairs(threads) do
    repeats = repeats + thread:get("repeated")
  end
  local errors = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d socket_errors=%d status_errors=%d repeats=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status, repeats))
end
