#!/usr/bin/python3
"""What a page fault costs on this machine, the unit most of a job's CPU is
paid in (benchmarks/README.md, "Cost per job"):

    /usr/bin/python3 benchmarks/faults.py

Prints the median of 20 rounds for: first writes to 1,000 fresh anonymous
pages; fork() and exit of a process with 64 MiB of written anonymous memory;
the same child writing 1,000 of those pages first (copy-on-write). A Python
loop adds well under a microsecond per page to each figure.
"""
import mmap
import os
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
        print("%-42s %7.2f ms" % (k, statistics.median(v)))


if __name__ == "__main__":
    main()
