-- wrk script for bench/load.sh: POST a different sealed message on every request.
-- Arguments: PACK NTHREADS TOKEN. PACK is every sealed message end to end, PACK.sizes their
-- sizes (one a line, in the same order). Each wrk thread takes its own contiguous share (no
-- message is sent twice while they last) and counts the statuses it gets back.
--
-- wrk runs each thread's `init` in its main thread just before starting that thread, and its
-- clock starts only once all have started: while the second thread loads its messages, the
-- first already sends requests that wrk counts. Opening 20,000 files there took 1.5 s when they
-- were cached and over 20 s after the host had paged them out, which made wrk report up to 3x the
-- real rate. One sequential read of a pack the scripts have just read (so it is cached) keeps
-- that start-up to a few tens of milliseconds.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local pack, nthreads = args[1], tonumber(args[2])
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  wrk.headers["Content-Type"] = "application/octet-stream"
  bodies, i, statuses = {}, 0, {}
  local sizes = {}
  for line in io.lines(pack .. ".sizes") do table.insert(sizes, tonumber(line)) end
  local share = math.ceil(#sizes / nthreads)
  local first, last = id * share + 1, math.min(#sizes, (id + 1) * share)
  local offset = 0
  for k = 1, first - 1 do offset = offset + sizes[k] end
  local f = assert(io.open(pack, "rb"))
  assert(f:seek("set", offset))
  for k = first, last do table.insert(bodies, f:read(sizes[k])) end
  f:close()
end

function request()
  i = i + 1
  local body = bodies[((i - 1) % #bodies) + 1]
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d: %d\n", k, v)) end
  io.write(string.format("p50_ms %.2f\np99_ms %.2f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
