-- wrk script for the listing scenarios: every request POSTs the JSON body in
-- BENCH_BODY to the path in BENCH_PATH (/api/help/openTickets or
-- /api/help/openTicketsV2), authenticated with the key in BENCH_API_KEY.
--
-- Besides wrk's own counts, it counts per response: any status outside 2xx, and any
-- 2xx whose body does not say "error":false (Helpline answers a refused listing
-- with 200 and "error":true). At the end it prints one line for the driver:
--   bench-lua: responses=N non_2xx=N not_success=N

local function required(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error(name .. " is not set: the driver exports it")
  end
  return value
end

wrk.method = "POST"
wrk.path = required("BENCH_PATH")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-auth-apikey"] = required("BENCH_API_KEY")
wrk.headers["x-auth-scheme"] = "api-token"
wrk.body = required("BENCH_BODY")

-- Each wrk thread runs its own Lua state; keep a handle on each so that done(),
-- which runs in yet another state, can add their counts up.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  responses = 0
  non_2xx = 0
  not_success = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  elseif not string.find(body, '"error":false', 1, true) then
    not_success = not_success + 1
  end
end

function done(summary, latency, requests)
  local totals = { responses = 0, non_2xx = 0, not_success = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  io.write(string.format(
    "bench-lua: responses=%d non_2xx=%d not_success=%d\n",
    totals.responses, totals.non_2xx, totals.not_success
  ))
end
