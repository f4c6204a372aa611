-- wrk -t1 -c64 -d10s -s bench/wrk/mutations.lua http://127.0.0.1:PORT
-- Creates and updates, half each, like the load tool's `throughput` scenario. The agents to update are made
-- by bench/wrk/run.sh, which writes their ids to the file named by IDS.
local ids = {}
local n = 0
local f = io.open(os.getenv("IDS") or "/tmp/switchboard-wrk-ids")
if f then
  for line in f:lines() do ids[#ids + 1] = line end
  f:close()
end
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = '{"name":"wrk-' .. n .. '"}'
  if n % 2 == 0 or #ids == 0 then
    return wrk.format("POST", "/api/agents", nil, body)
  end
  return wrk.format("PATCH", "/api/agents/" .. ids[math.floor(n / 2) % #ids + 1], nil, body)
end
response = function(status)
  if status >= 300 then error("status " .. status) end
end
