#!/usr/bin/python3
"""CPU of each stage of a warm job's life in a forked child, measured
in-process with the worker's own code (python/worker.py), without the server
or the sandbox:

    /usr/bin/python3 benchmarks/stages.py [ROUNDS]

A template like the worker's (numpy and pandas imported, the warm-up script
run once, gc frozen) forks children that each do one thing and exit; their
CPU time and minor faults come from getrusage(RUSAGE_CHILDREN). Rows:

  fork+exit (os.fork)    what os.fork() costs a child that exits at once
  fork+exit (libc fork)  the same without CPython's at-fork hooks (worker.fork)
  warm-up script         a child that runs the warm-up script, as before
  populate, copy only    a child that copies the probe's pages instead, as
                         worker.populate does while other tasks run
  populate, read ahead   ... and reads a byte of each, as it does on an
                         idle machine
  thread (X)             a child that starts and joins an empty thread, as
                         worker.in_background does to prepare at nice 19:
                         threading.Thread or a bare _thread
  job after X            the seed's pandas job alone, in a child prepared by X
                         (its latency, once the job arrives)
  X + job                the whole child: preparation, job and exit

Variants alternate round by round, so that the machine's load hits all alike.
"""
import _thread
import gc
import json
import os
import resource
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import numpy  # noqa: E402,F401
import pandas  # noqa: E402,F401
import worker as w  # noqa: E402

WARM_SCRIPT = w.warm_script(["numpy", "pandas"])
JOB = ("import pandas as pd\n\ndef main():\n    df = pd.DataFrame({\"name\": [\"Alice\", \"Bob\", \"Charlie\"],"
       " \"age\": [25, 30, 35]})\n    return {\"rows\": len(df), \"columns\": list(df.columns),"
       " \"mean_age\": float(df[\"age\"].mean())}")


def job():
    ns = {"__name__": "__script__"}
    exec(compile(JOB, "<script>", "exec"), ns)
    json.dumps(ns["main"]())


def probe():
    """The pages a warm-up writes, as the worker's probe child reports them."""
    r, wr = os.pipe()
    pid = w.fork()
    if pid == 0:
        w.warm_child(WARM_SCRIPT)
        os.write(wr, json.dumps(w.written_pages(w.open_pagemap())).encode())
        os._exit(0)
    os.close(wr)
    with os.fdopen(r, "rb") as f:
        ranges = json.loads(f.read())
    os.waitpid(pid, 0)
    return ranges


def copy_only(ranges):
    """worker.populate on a busy machine: it copies and reads nothing ahead."""
    w.machine_idle = lambda fd: False
    w.populate(ranges)


def read_ahead(ranges):
    """worker.populate on an idle machine: it reads every copied page too."""
    w.machine_idle = lambda fd: True
    w.populate(ranges)


def threading_thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


def bare_thread():
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(done.release, ())
    done.acquire()


def child(fork, body):
    """CPU ms and minor faults of a child that runs body and exits, and the
    CPU ms body reported for its job part (or 0)."""
    r, wr = os.pipe()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pid = fork()
    if pid == 0:
        os.write(wr, str(body() or 0).encode())
        os._exit(0)
    os.close(wr)
    with os.fdopen(r, "rb") as f:
        part = float(f.read() or 0)
    os.waitpid(pid, 0)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e3, r1.ru_minflt - r0.ru_minflt, part


def timed_job(prepare):
    def body():
        prepare()
        t = time.process_time()
        job()
        return (time.process_time() - t) * 1e3
    return body


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    w.warm_child(WARM_SCRIPT)
    gc.collect()
    w.libc.malloc_trim(0)
    gc.freeze()
    ranges = probe() if w.populate_supported() else None
    if ranges is None:
        print("this kernel lacks MADV_POPULATE_WRITE: no populate rows")
    else:
        print("probe: %d runs, %d pages" % (len(ranges), sum(n for _, n in ranges) // w.PAGE))
    rows = {
        "fork+exit (os.fork)": (os.fork, lambda: None),
        "fork+exit (libc fork)": (w.fork, lambda: None),
        "thread (threading.Thread)": (w.fork, threading_thread),
        "thread (bare _thread)": (w.fork, bare_thread),
        "warm-up script": (w.fork, lambda: w.warm_child(WARM_SCRIPT)),
        "job after nothing": (w.fork, timed_job(lambda: None)),
        "job after warm-up script": (w.fork, timed_job(lambda: w.warm_child(WARM_SCRIPT))),
    }
    if ranges is not None:
        rows["populate, copy only"] = (w.fork, lambda: copy_only(ranges))
        rows["job after populate, copy only"] = (w.fork, timed_job(lambda: copy_only(ranges)))
        rows["populate, read ahead"] = (w.fork, lambda: read_ahead(ranges))
        rows["job after populate, read ahead"] = (w.fork, timed_job(lambda: read_ahead(ranges)))
    got = {k: [] for k in rows}
    for _ in range(rounds):
        for name, (fork, body) in rows.items():
            got[name].append(child(fork, body))
    print("\n| stage | child CPU (whole child) | minor faults | job part CPU |")
    print("|---|---:|---:|---:|")
    for name, samples in got.items():
        cpu, flt, part = (statistics.median(c) for c in zip(*samples))
        print("| %s | %.2f ms | %d | %s |" % (name, cpu, flt, "%.2f ms" % part if part else ""))


if __name__ == "__main__":
    main()
