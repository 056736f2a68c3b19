#!/usr/bin/python3
"""Latency of live output: from a job's print() to a client reading it.

Starts nothing: point it at a running server (./scripts/run.sh).
    python3 benchmarks/sse_latency.py [http://127.0.0.1:8080]
The job prints time.time() 50 times, 20 ms apart, through
POST /v1/execute with Accept: text/event-stream; the client subtracts each
printed time from the time it read the line (same machine, same clock).
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

url = urllib.parse.urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
script = ("import time\ndef main():\n    for i in range(50):\n"
          "        print(repr(time.time()))\n        time.sleep(0.02)\n")
conn = http.client.HTTPConnection(url.hostname, url.port or 80)
conn.request("POST", "/v1/execute", json.dumps({"script": script}),
             {"Accept": "text/event-stream", "Content-Type": "application/json"})
resp = conn.getresponse()
if resp.status != 200:
    sys.exit("status %d: %s" % (resp.status, resp.read()))
lat, pending = [], ""
while True:
    line = resp.fp.readline()
    if not line:
        break
    now = time.time()
    if line.startswith(b'data: "'):
        pending += json.loads(line[6:])
        while "\n" in pending:
            printed, pending = pending.split("\n", 1)
            lat.append((now - float(printed)) * 1000)
lat.sort()
print("lines=%d median=%.2f ms p95=%.2f ms max=%.2f ms" % (
    len(lat), statistics.median(lat), lat[int(len(lat) * 0.95)], lat[-1]))
