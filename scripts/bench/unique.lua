-- wrk script: POST deliver-as-message with a unique msgId per request (durable ingest path).
-- Usage: wrk -s unique.lua URL -- RUNID [DEST_AS] [KIND]
-- KIND "ue": deliver-ue-message bodies from UE "bench-ue" (point URL at that path).
-- KIND "to-ue": deliver-as-message to UEs bench-ue-00000 .. (DEST_AS is then their count).
local counter = 0
local runid = "run"
local dest = "sink"
local ues = 0
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
  elseif args[3] == "to-ue" then
    ues = tonumber(dest)
  end
end

function request()
  counter = counter + 1
  local target = string.format('{"addrType":"AS","addr":"%s"}', dest)
  if ues > 0 then
    target = string.format('{"addrType":"UE","addr":"bench-ue-%05d"}', counter % ues)
  end
  local body = string.format(
    '{"oriAddr":%s,"destAddr":%s,' ..
    '"msgId":"%s-%d-%d","payload":"%s","stoAndFwInd":true,"delivStReqInd":false}',
    origin, target, runid, tid, counter, payload)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
