"""What each --preload choice costs a warm template: the time to import it
(wall and CPU: on a busy machine CPU time is the steadier figure) and the
template's resident memory after (RSS and PSS, from
/proc/self/smaps_rollup), each the median of fresh interpreters. The
import runs through worker.py's own preload(), so matplotlib is pyplot with
the Agg backend and a first figure rendered, as in the service.

    /usr/bin/python3 benchmarks/preload.py                      # the host's Python
    /usr/bin/python3 benchmarks/preload.py --cmd "bwrap --ro-bind /var/cache/python-executor/trixie / \
        --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3"
    /usr/bin/python3 benchmarks/preload.py --cmd "docker run -i --rm --entrypoint python3 python-executor"

--cmd is how to start the interpreter to measure; it reads its program on
stdin. Sets whose modules are not installed there are reported as such.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "..", "python", "worker.py")

SETS = ["", "numpy", "numpy,pandas", "numpy,pandas,matplotlib", "scipy", "sklearn",
        "statsmodels.api", "seaborn", "sympy",
        "numpy,pandas,scipy,matplotlib,sklearn,statsmodels.api,seaborn,sympy"]

CHILD = r'''
import json, os, sys, tempfile, time
src, names = sys.stdin.read().split("\0")
names = [n for n in names.split(",") if n]
os.environ["MPLBACKEND"] = "Agg"
ns = {"__name__": "preload_bench"}
exec(compile(src, "worker.py", "exec"), ns)
scratch = tempfile.mkdtemp()
t, c = time.perf_counter(), time.process_time()
try:
    ns["preload"](names, scratch)
except RuntimeError as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(0)
took, cpu = time.perf_counter() - t, time.process_time() - c
ns["gc"].collect()
kib = {}
with open("/proc/self/smaps_rollup") as f:
    for line in f:
        k, _, v = line.partition(":")
        if k in ("Rss", "Pss"):
            kib[k] = int(v.split()[0])
print(json.dumps({"seconds": took, "cpu": cpu, "rss_kib": kib["Rss"], "pss_kib": kib["Pss"]}))
'''


def measure(cmd, names, src):
    out = subprocess.run(cmd + ["-I", "-c", CHILD], input=(src + "\0" + names).encode(),
                         capture_output=True, check=True).stdout
    return json.loads(out.decode().strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cmd", default="/usr/bin/python3", help="interpreter command line (default %(default)s)")
    ap.add_argument("--runs", type=int, default=5, help="fresh interpreters per set (default %(default)s)")
    args = ap.parse_args()
    cmd = shlex.split(args.cmd)
    with open(WORKER) as f:
        src = f.read()
    version = subprocess.run(cmd + ["-I", "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print("Python %s (%s), median of %d\n" % (version, args.cmd, args.runs))
    print("| --preload | import wall ms | import CPU ms | RSS MiB | PSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for names in SETS:
        runs = [measure(cmd, names, src) for _ in range(args.runs)]
        if "error" in runs[0]:
            print("| %s | %s | | | |" % (names or "none", runs[0]["error"].split(": ", 1)[-1]))
            continue
        ms = statistics.median(r["seconds"] for r in runs) * 1000
        cpu = statistics.median(r["cpu"] for r in runs) * 1000
        rss = statistics.median(r["rss_kib"] for r in runs) / 1024
        pss = statistics.median(r["pss_kib"] for r in runs) / 1024
        print("| %s | %.0f | %.0f | %.1f | %.1f |" % (names or "none", ms, cpu, rss, pss))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
