#!/usr/bin/python3
"""Where a warm pandas job's CPU goes, process by process (run as root).

Starts BINARY with one worker, runs N sequential seed pandas jobs, and reads
/proc/<pid>/stat before and after: the server, the template (its own time,
and its reaped children's: the job processes, which are its children even
when its zygote forks them), and the zygote. Prints ms of CPU and minor
faults per job for each.

    benchmarks/split.py BINARY [--jobs 100] [--port 18190]
"""
import argparse
import json
import os
import subprocess
import time
import urllib.request

PANDAS = ("import pandas as pd\n\ndef main():\n    df = pd.DataFrame({\"name\": [\"Alice\", \"Bob\", \"Charlie\"],"
          " \"age\": [25, 30, 35]})\n    return {\"rows\": len(df), \"columns\": list(df.columns),"
          " \"mean_age\": float(df[\"age\"].mean())}")


def stat(pid):
    """utime+stime, cutime+cstime (ticks); minflt, cminflt."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    f = s[s.rfind(")") + 2:].split()
    return int(f[11]) + int(f[12]), int(f[13]) + int(f[14]), int(f[7]), int(f[8])


def processes():
    """pid -> (ppid, sid, command line) of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                s = f.read()
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        f = s[s.rfind(")") + 2:].split()
        out[int(name)] = (int(f[1]), int(f[3]), cmd)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--port", type=int, default=18190)
    args = ap.parse_args()
    uid = str(1750000000 + args.port % 1000 * 16)
    server = subprocess.Popen([args.binary, "--addr", "127.0.0.1:%d" % args.port, "--pool-size", "1",
                               "--worker-uid", uid, "--worker-gid", uid, "--worker-uids", "16"],
                              stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % args.port
    body = json.dumps({"script": PANDAS}).encode()
    run = lambda: urllib.request.urlopen(urllib.request.Request(url + "/execute", data=body)).read()
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/ready").read()
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(5):
            run()
        time.sleep(0.5)
        procs = processes()
        below, frontier = set(), {server.pid}
        while frontier:
            frontier = {pid for pid, (ppid, _, _) in procs.items() if ppid in frontier}
            below |= frontier
        ours = {pid for pid in below if os.path.basename(procs[pid][2].split(" ")[0]).startswith("python")}
        template = next(pid for pid in ours if procs[pid][0] not in ours)
        zygotes = [pid for pid in ours if procs[pid][0] == template and procs[pid][1] != pid]
        pids = {"server": server.pid, "template": template}
        pids.update({"zygote": z for z in zygotes})
        before = {k: stat(p) for k, p in pids.items()}
        for _ in range(args.jobs):
            run()
        time.sleep(0.5)
        after = {k: stat(p) for k, p in pids.items()}
    finally:
        server.terminate()
        server.wait()
    tick = 1000.0 / os.sysconf("SC_CLK_TCK") / args.jobs
    d = lambda k, i: after[k][i] - before[k][i]
    total = 0.0
    rows = [(k, d(k, 0) * tick, d(k, 2) / args.jobs) for k in pids]
    rows.append(("job processes", d("template", 1) * tick, d("template", 3) / args.jobs))
    print("| process | CPU ms/job | minor faults/job |\n|---|---:|---:|")
    for name, ms, faults in rows:
        total += ms
        print("| %s | %.1f | %.0f |" % (name, ms, faults))
    print("| all | %.1f | |" % total)


if __name__ == "__main__":
    main()
