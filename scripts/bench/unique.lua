-- wrk script: POST deliver-as-message with a unique msgId per request (durable ingest path).
-- Usage: wrk -s unique.lua URL -- RUNID [DEST_AS] [KIND]
-- KIND "ue": deliver-ue-message bodies from UE "bench-ue" (point URL at that path).
local counter = 0
local runid = "run"
local dest = "sink"
local origin = '{"addrType":"AS","addr":"bench"}'
local payload = string.rep("x", 160)
local tid = 0
local threads = {}

function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end

function init(args)
  runid = args[1] or runid
  dest = args[2] or dest
  if args[3] == "ue" then
    origin = '{"addrType":"UE","addr":"bench-ue"}'
  end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"oriAddr":%s,"destAddr":{"addrType":"AS","addr":"%s"},' ..
    '"msgId":"%s-%d-%d","payload":"%s","stoAndFwInd":true,"delivStReqInd":false}',
    origin, dest, runid, tid, counter, payload)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
