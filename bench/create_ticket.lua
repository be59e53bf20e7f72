-- wrk script for the "create ticket" scenario: every request POSTs the same valid
-- ticket to /api/help/ticket, authenticated with the key in BENCH_API_KEY.
--
-- Besides wrk's own counts, it counts per response: any status outside 2xx, and any
-- 2xx whose body is not a success envelope (Helpline answers domain failures with
-- 200 and "success":false). At the end it prints one line for the driver:
--   bench-lua: responses=N non_2xx=N not_success=N

local api_key = os.getenv("BENCH_API_KEY")
if api_key == nil or api_key == "" then
  error("BENCH_API_KEY is not set: export the API key to send")
end

wrk.method = "POST"
wrk.path = "/api/help/ticket"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-auth-apikey"] = api_key
wrk.headers["x-auth-scheme"] = "api-token"
wrk.body = [[{"subject":"Camera connectivity issue",]]
  .. [["body":"My camera is not connecting to the network properly.",]]
  .. [["collaborators":["it@example.com"],"serialNumbers":["RCAM-1234-ABCD"],]]
  .. [["productType":"Camera","serviceType":"Support","consoleAccessGranted":true}]]

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
  elseif not string.find(body, '"success":true', 1, true) then
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
