// h2c load generator with a unique msgId per request (h2load can only repeat one body).
// Usage: node h2unique.mjs URL REQUESTS CONNECTIONS STREAMS RUNID [DEST_AS] [KIND]
// KIND: as (deliver-as-message from AS "bench"), as-report (the same, asking for a report),
// ue (deliver-ue-message from UE "bench-ue") or report (deliver-report from DEST_AS about
// message RUNID-n that AS "bench" sent it) or to-ue (deliver-as-message to UEs
// bench-ue-00000 .. , DEST_AS being their count); msgIds are RUNID-0 .. RUNID-(REQUESTS-1).
import http2 from "node:http2";

const [url, total, conns, streams, runid, dest = "sink", kind = "as"] = process.argv.slice(2);
const target = new URL(url);
const payload = "x".repeat(160);
let sent = 0, done = 0, ok = 0, bad = 0;
const lat = [];
const start = process.hrtime.bigint();
const bench = { addrType: "AS", addr: "bench" };
const sink = { addrType: "AS", addr: dest };

function body(n) {
  const msgId = `${runid}-${n}`;
  if (kind === "report") {
    return JSON.stringify({ oriAddr: sink, destAddr: bench, msgId, delivSt: "REPT_DELY_SUCCESS" });
  }
  const oriAddr = kind === "ue" ? { addrType: "UE", addr: "bench-ue" } : bench;
  const destAddr = kind === "to-ue"
    ? { addrType: "UE", addr: `bench-ue-${String(n % Number(dest)).padStart(5, "0")}` }
    : sink;
  return JSON.stringify({
    oriAddr, destAddr, msgId, payload, stoAndFwInd: true,
    delivStReqInd: kind === "as-report",
  });
}

await new Promise((resolve) => {
  for (let c = 0; c < Number(conns); c++) {
    const session = http2.connect(target.origin);
    session.on("error", (e) => { console.error(e.message); });
    const fire = () => {
      if (sent >= Number(total)) return;
      const n = sent++;
      const t0 = process.hrtime.bigint();
      const data = body(n);
      // Declared like curl, httpx and most HTTP/2 clients do for a body they hold whole.
      const req = session.request({
        ":method": "POST", ":path": target.pathname, "content-type": "application/json",
        "content-length": Buffer.byteLength(data),
      });
      req.on("response", (h) => { if (h[":status"] === 200) ok++; else bad++; });
      req.on("data", () => {});
      req.on("end", () => {
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        done++;
        if (done >= Number(total)) { resolve(); return; }
        fire();
      });
      req.on("error", () => { bad++; done++; if (done >= Number(total)) resolve(); else fire(); });
      req.end(data);
    };
    for (let s = 0; s < Number(streams); s++) fire();
  }
});
const secs = Number(process.hrtime.bigint() - start) / 1e9;
lat.sort((a, b) => a - b);
const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(2);
console.log(JSON.stringify({ requests: done, ok, bad, seconds: +secs.toFixed(3),
  rps: Math.round(done / secs), p50_ms: +p(0.5), p99_ms: +p(0.99) }));
process.exit(0);
