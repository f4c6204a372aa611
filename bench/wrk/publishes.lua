-- wrk -t1 -c64 -d10s -s bench/wrk/publishes.lua http://127.0.0.1:PORT
local n = 0
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format("POST", "/api/events", nil, '{"channel":"bench","event":"tick","data":{"n":' .. n .. '}}')
end
