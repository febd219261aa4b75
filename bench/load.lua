-- wrk script for bench/load.sh: POST a different sealed message on every request.
-- Each wrk thread takes its own share of the files (no message is sent twice while files last)
-- and counts the statuses it gets back.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local list, nthreads = args[1], tonumber(args[2])
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  wrk.headers["Content-Type"] = "application/octet-stream"
  bodies, i, statuses = {}, 0, {}
  local n = 0
  for path in io.lines(list) do
    if n % nthreads == id then
      local f = assert(io.open(path, "rb"))
      table.insert(bodies, f:read("*a"))
      f:close()
    end
    n = n + 1
  end
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
