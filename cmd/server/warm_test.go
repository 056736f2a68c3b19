package main

import (
	"testing"
)

// The job path's cheap pieces (python/worker.py: fork() without CPython's
// at-fork hooks, waiting children that copy the warm-up's pages with
// MADV_POPULATE_WRITE instead of running the warm-up script) must leave a job
// the interpreter it would get from os.fork(): threads, processes, signal
// handlers and BLAS work, random numbers of its own (OpenSSL's too), its own
// thread id where glibc keeps it and its robust futex list registered (the
// zygote's clone), the garbage collector
// on (the zygote's loop runs without), and pandas answering as
// in a fresh interpreter, at nice 0 (the child prepared itself at nice 19, in a
// thread that is gone).
func TestWarmChildrenBehaveLikeFreshForks(t *testing.T) {
	for _, level := range []string{"auto", "basic"} {
		t.Run(level, func(t *testing.T) {
			testWarmChildren(t, startServer(t, "--pool-size", "1", "--isolation", level))
		})
	}
}

func testWarmChildren(t *testing.T, s *server) {
	const src = `
import ctypes, gc, os, random, signal, ssl, subprocess, sys, threading
import numpy as np, pandas as pd

def tasks():
    # The warm-up thread may take a moment to finish exiting once joined.
    # /proc is hidden from jobs at basic level.
    import time
    deadline = time.monotonic() + 5
    try:
        while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1

def main():
    got = {"nice": os.getpriority(os.PRIO_PROCESS, 0), "tasks": tasks(), "threads": threading.active_count()}
    t = threading.Thread(target=lambda: got.setdefault("thread", threading.current_thread() is not threading.main_thread()))
    t.start(); t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    got["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    got["subprocess"] = subprocess.run(["/bin/echo", "hi"], capture_output=True, text=True).stdout
    signal.signal(signal.SIGALRM, lambda *a: got.setdefault("signal", True))
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    while "signal" not in got:
        signal.pause()
    a = np.arange(200 * 200, dtype=float).reshape(200, 200)
    got["blas"] = float((a @ a.T).trace())
    df = pd.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]})
    got["groupby"] = df.groupby("k")["v"].sum().to_dict()
    got["main_thread"] = threading.current_thread() is threading.main_thread()
    # The zygote's clone() must leave glibc the child's own tid, or
    # pthread_kill of the main thread goes to the zygote's (ESRCH).
    got["tid"] = threading.get_native_id() == os.getpid() == threading.main_thread().native_id
    signal.signal(signal.SIGUSR1, lambda *a: got.setdefault("pthread_kill", True))
    signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
    got["gc"] = gc.isenabled()
    # ... and register the robust futex list again, as glibc's fork does.
    head, size = ctypes.c_void_p(), ctypes.c_size_t()
    libc = ctypes.CDLL(None, use_errno=True)
    got["robust_list"] = os.uname().machine != "x86_64" or (
        libc.syscall(274, 0, ctypes.byref(head), ctypes.byref(size)) == 0 and bool(head.value))
    got["random"] = [random.random(), float(np.random.rand())]
    got["openssl"] = ssl.RAND_bytes(16).hex()
    w = sys.modules["__main__"]
    pages = w.WARM
    got["populated"] = pages is not None and pages.ranges is not None
    got["populate_supported"] = pages is not None and pages.supported
    return got
`
	a := np200()
	seen := map[float64]bool{}
	seenSSL := map[string]bool{}
	populated := false
	// The first warm child probes; the ones forked after it copy pages.
	for i := range 4 {
		r := s.execute(t, script(src))
		got, ok := r.Body["result"].(map[string]any)
		if !ok {
			t.Fatalf("job %d: %s", i, r.Raw)
		}
		if got["thread"] != true || got["fork"] != 7.0 || got["subprocess"] != "hi\n" || got["signal"] != true ||
			got["blas"] != a || got["main_thread"] != true || got["tid"] != true || got["pthread_kill"] != true || got["gc"] != true || got["robust_list"] != true || got["nice"] != 0.0 || got["tasks"] != 1.0 || got["threads"] != 1.0 {
			t.Errorf("job %d: %v", i, got)
		}
		if g, _ := got["groupby"].(map[string]any); g["a"] != 4.0 || g["b"] != 2.0 {
			t.Errorf("job %d: groupby = %v", i, got["groupby"])
		}
		if ssl, _ := got["openssl"].(string); ssl == "" || seenSSL[ssl] {
			t.Errorf("job %d drew OpenSSL bytes %q, which an earlier job drew too", i, ssl)
		} else {
			seenSSL[ssl] = true
		}
		for _, v := range got["random"].([]any) {
			if seen[v.(float64)] {
				t.Errorf("job %d drew %v, which an earlier job drew too", i, v)
			}
			seen[v.(float64)] = true
		}
		if i > 0 && got["populate_supported"] == true && got["populated"] != true {
			t.Errorf("job %d: the kernel has MADV_POPULATE_WRITE but the child was not given the probe's pages", i)
		}
		populated = populated || got["populated"] == true
	}
	if !populated {
		t.Log("this kernel lacks MADV_POPULATE_WRITE or pagemap: every warm child ran the warm-up script")
	}

}

// np200 is trace(A Aᵀ) for A = arange(40000).reshape(200, 200): the sum of
// the squares of 0..39999.
func np200() float64 {
	n := 40000.0
	return (n - 1) * n * (2*n - 1) / 6
}
