#!/usr/bin/python3
"""What a page fault costs on this machine, the unit most of a job's CPU is
paid in (benchmarks/README.md, "Cost per job"):

    /usr/bin/python3 benchmarks/faults.py

Prints the median of 20 rounds for: first writes to 1,000 fresh anonymous
pages; fork() and exit of a process with 64 MiB of written anonymous memory;
the same child writing 1,000 of those pages first (copy-on-write). A Python
loop adds well under a microsecond per page to each figure.

Then the CPU time of that last child, and of a child of a pandas-loaded
interpreter that runs the seed's pandas job (a bare fork per script, issue
12's reference), each alone and while a second process does the same at the
same time: on a machine whose faults run in parallel the two match; on this
repository's VM the second is up to twice the first, which is why
back-to-back jobs cost more than spaced ones (benchmarks/README.md, "Cost
per job").
"""
import mmap
import os
import resource
import statistics
import time

PAGE = mmap.PAGESIZE
N = 1000


def touch(m, pages):
    for i in range(pages):
        m[i * PAGE] = 1


def timed(fn):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def fork_and(fn):
    def run():
        pid = os.fork()
        if pid == 0:
            fn()
            os._exit(0)
        os.waitpid(pid, 0)
    return run


def main():
    big = mmap.mmap(-1, 64 << 20)
    touch(big, (64 << 20) // PAGE)
    rows = {
        "1,000 first writes to fresh pages": lambda: touch(mmap.mmap(-1, N * PAGE), N),
        "fork + exit, 64 MiB written": fork_and(lambda: None),
        "fork + 1,000 copy-on-write faults + exit": fork_and(lambda: touch(big, N)),
    }
    got = {k: [] for k in rows}
    for _ in range(20):
        for k, fn in rows.items():
            got[k].append(timed(fn))
    for k, v in got.items():
        print("%-56s %7.2f ms" % (k, statistics.median(v)))
    alone_and_beside("the copy-on-write child", fork_and(lambda: touch(big, N)))
    import pandas as pd
    job = fork_and(lambda: pd.DataFrame({"name": ["Alice", "Bob", "Charlie"], "age": [25, 30, 35]})["age"].mean())
    job()
    alone_and_beside("a bare fork running the seed's job", job)


def alone_and_beside(name, fn):
    print("%-56s %7.2f ms CPU" % (name + ", alone", child_cpu(fn)))
    pid = os.fork()
    if pid == 0:
        child_cpu(fn)
        os._exit(0)
    beside = child_cpu(fn)
    os.waitpid(pid, 0)
    print("%-56s %7.2f ms CPU" % (name + ", beside another", beside))


def child_cpu(fn, rounds=20):
    """CPU ms per run of fn, which forks and reaps a child."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(rounds):
        fn()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e3 / rounds


if __name__ == "__main__":
    main()
