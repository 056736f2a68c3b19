#!/usr/bin/python3
"""CPU per job of two server builds, side by side (run as root, cgroup v1).

Each build runs in a cpuacct cgroup of its own; batches of sequential jobs
alternate between them (A B A B), so a machine whose load changes during the
run affects both alike. Prints CPU ms per job (the server and everything it
started) and wall-clock quartiles.

    benchmarks/ab_cpu.py OLD_BINARY NEW_BINARY [--rounds 4] [--batch 25] [--fork-floor]
                         [--server-args "--isolation basic"] [--gap 0.1]

--fork-floor adds a third contender, benchmarks/floor.py --fork: a warm
interpreter that forks a child per script, with no isolation at all (issue
12's reference), measured the same way at the same time.

--gap S waits S seconds after each answer before the next request (default
0: back to back, a closed loop of one client), so that what a server does
after an answer (preparing its next process) no longer runs beside the
next job.
"""
import argparse
import json
import os
import statistics
import subprocess
import time
import urllib.request

PANDAS = ("import pandas as pd\n\ndef main():\n    df = pd.DataFrame({\"name\": [\"Alice\", \"Bob\", \"Charlie\"],"
          " \"age\": [25, 30, 35]})\n    return {\"rows\": len(df), \"columns\": list(df.columns),"
          " \"mean_age\": float(df[\"age\"].mean())}")
HELLO = "def main():\n    return {'message': 'Hello, World!', 'value': 42}"


def start(name, binary, port, extra=()):
    cg = "/sys/fs/cgroup/cpuacct/pyexec-ab-%s" % name
    os.makedirs(cg, exist_ok=True)
    if binary == "floor":
        argv = ["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.py"),
                str(port), "--fork"]
    else:
        argv = [binary, "--addr", "127.0.0.1:%d" % port, "--pool-size", "2",
                # uids of their own: two root servers cannot share a range
                "--worker-uid", str(1800000000 + port * 16), "--worker-gid", str(1800000000 + port * 16),
                "--worker-uids", "16"] + list(extra)
    proc = subprocess.Popen(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg] + argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/ready").read()
            return proc, cg, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("%s did not become ready" % binary)


def cpu_ns(cg):
    with open(cg + "/cpuacct.usage") as f:
        return int(f.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--fork-floor", action="store_true")
    ap.add_argument("--server-args", default="", help="more flags for both servers")
    ap.add_argument("--gap", type=float, default=0, help="seconds between an answer and the next request")
    args = ap.parse_args()
    extra = args.server_args.split()
    servers = {"old": start("old", args.old, 18181, extra), "new": start("new", args.new, 18182, extra)}
    if args.fork_floor:
        servers["floor"] = start("floor", "floor", 18183)
    try:
        for label, src in (("pandas", PANDAS), ("hello", HELLO)):
            body = json.dumps({"script": src}).encode()
            cpu = {k: 0 for k in servers}
            wall = {k: [] for k in servers}
            for _ in range(args.rounds):
                for name, (_, cg, url) in servers.items():
                    time.sleep(0.3)  # the previous batch's recycling is done
                    c0 = cpu_ns(cg)
                    for _ in range(args.batch):
                        t = time.perf_counter()
                        urllib.request.urlopen(urllib.request.Request(url + "/execute", data=body)).read()
                        wall[name].append((time.perf_counter() - t) * 1000)
                        time.sleep(args.gap)
                    time.sleep(0.3)
                    cpu[name] += cpu_ns(cg) - c0
            n = args.rounds * args.batch
            for name in servers:
                q = statistics.quantiles(wall[name], n=4)
                print("%-6s %s: %.1f ms CPU/job, wall p25/p50/p75 %.1f/%.1f/%.1f ms" % (
                    label, name, cpu[name] / n / 1e6, q[0], q[1], q[2]))
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
