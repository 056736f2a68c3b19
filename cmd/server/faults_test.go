package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Faults a real deployment sees, against the real server and real Python:
// workers killed (the OOM killer, a crash) idle or busy, a template that stops
// answering, SIGTERM with work in flight, clients that send huge bodies.

// numbered is a script whose answer is known from n, so a wrong answer (one
// job's result given to another request) cannot pass.
func numbered(n int) (body string, want map[string]any) {
	src := fmt.Sprintf("N = %d\ndef main():\n    print('job', N)\n    return {'n': N, 'sq': N * N}", n)
	return script(src), map[string]any{"result": map[string]any{"n": float64(n), "sq": float64(n * n)}, "stdout": fmt.Sprintf("job %d", n)}
}

func TestIdleWorkerKilledNextRequestSucceeds(t *testing.T) {
	s := startServer(t, "--pool-size", "2")
	for i := range 5 {
		// Kill the worker the pool hands out next: the one that ran the
		// previous job (puddle's idle workers are a stack).
		id := fmt.Sprintf("before-kill-%d", i)
		if r := s.executeAs(t, id, script("def main():\n    return 0")); r.Status != 200 {
			t.Fatalf("request before the kill: %s", r.Raw)
		}
		victim := s.workerOf(t, id)
		waitFor(t, "both workers to be idle", func() bool { return s.ready(t).Body["idle_workers"] == 2.0 })
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		body, want := numbered(i)
		r := s.execute(t, body)
		if diff := cmp.Diff(want, r.Body); r.Status != 200 || diff != "" {
			t.Fatalf("round %d: request right after an idle worker was killed: status %d, diff (-want +got):\n%s", i, r.Status, diff)
		}
	}
	waitFor(t, "the pool to be full again", func() bool { return s.ready(t).Body["idle_workers"] == 2.0 })
}

func TestWorkersKilledAtRandomUnderLoad(t *testing.T) {
	s := startServer(t, "--pool-size", "2", "--queue-timeout", "60s")
	var (
		mu     sync.Mutex
		killed []int // guarded by mu
	)
	stop := make(chan struct{})
	killerDone := make(chan struct{})
	go func() { // a warm worker, busy or idle, SIGKILLed every 300 ms, 8 times
		defer close(killerDone)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for kills := 0; kills < 8; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// Not workers still starting: with the race detector on a
			// loaded machine a spawn takes seconds, and killing those
			// would only measure how long the pool can be kept empty.
			if w := s.warmWorkers(); len(w) > 0 {
				kills++
				victim := w[rand.IntN(len(w))]
				mu.Lock()
				killed = append(killed, victim)
				mu.Unlock()
				syscall.Kill(victim, syscall.SIGKILL)
			}
		}
	}()
	type answer struct {
		id string
		r  reply
		n  int
	}
	answers := make(chan answer, 64)
	var clients sync.WaitGroup
	for c := range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for i := range 10 {
				n := 100*c + i
				body, _ := numbered(n)
				id := fmt.Sprintf("chaos-%d", n)
				answers <- answer{id, s.executeAs(t, id, body), n}
			}
		}()
	}
	clients.Wait()
	close(stop)
	<-killerDone
	close(answers)
	failed := 0
	for a := range answers {
		_, want := numbered(a.n)
		switch a.r.Status {
		case 200:
			if diff := cmp.Diff(want, a.r.Body); diff != "" {
				t.Errorf("request %s: wrong answer (-want +got):\n%s", a.id, diff)
			}
		case 500:
			failed++
			mu.Lock()
			own := slices.Contains(killed, s.workerOf(t, a.id))
			mu.Unlock()
			if !own {
				t.Errorf("request %s failed although its own worker was not killed: %s", a.id, a.r.Raw)
			}
		default:
			t.Errorf("request %s: %d %s", a.id, a.r.Status, a.r.Raw)
		}
	}
	t.Logf("%d workers killed; %d of 40 requests failed, each on the worker killed under it", len(killed), failed)
	waitFor(t, "the pool to be full again", func() bool { return s.ready(t).Body["idle_workers"] == 2.0 })
	if body, want := numbered(7); !cmp.Equal(want, s.execute(t, body).Body) {
		t.Error("a request after the storm failed")
	}
}

func TestStoppedTemplateTimesOutAndIsReplaced(t *testing.T) {
	s := startServer(t, "--pool-size", "2")
	if r := s.executeAs(t, "warm", script("def main():\n    return 0")); r.Status != 200 {
		t.Fatalf("first request: %s", r.Raw)
	}
	victim := s.workerOf(t, "warm") // handed out next
	waitFor(t, "both workers to be idle", func() bool { return s.ready(t).Body["idle_workers"] == 2.0 })
	tmpl := template(victim)
	if tmpl == 0 {
		t.Fatalf("no template below worker %d", victim)
	}
	if err := syscall.Kill(tmpl, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(tmpl, syscall.SIGCONT)
	body, want := numbered(1)
	r := s.execute(t, strings.Replace(body, `{"script"`, `{"timeout": 1, "script"`, 1))
	switch {
	case r.Status == 200: // the job never reached the stopped template and ran elsewhere
		if diff := cmp.Diff(want, r.Body); diff != "" {
			t.Errorf("wrong answer (-want +got):\n%s", diff)
		}
	case r.Status != 500 || !strings.Contains(r.Body["error"].(string), "stopped responding"):
		t.Errorf("request to a stopped template: %d %s, want an answer saying the worker stopped responding", r.Status, r.Raw)
	}
	waitFor(t, "the stopped worker to be replaced", func() bool {
		return s.metric(t, `pyexec_worker_kills_total{reason="unresponsive"}`) == 1 && s.ready(t).Body["idle_workers"] == 2.0
	})
}

func TestShutdownFinishesRunningAndQueuedJobs(t *testing.T) {
	s := startServer(t, "--pool-size", "1", "--shutdown-grace", "60s")
	slow := script("import time\ndef main():\n    time.sleep(3)\n    return 'running'")
	running, queued := make(chan reply, 1), make(chan reply, 1)
	go func() { running <- s.execute(t, slow) }()
	waitFor(t, "the job to start", func() bool { return s.ready(t).Body["busy_workers"] == 1.0 })
	go func() { queued <- s.execute(t, script("def main():\n    return 'queued'")) }()
	waitFor(t, "the second job to queue", func() bool { return s.ready(t).Body["waiting"] == 1.0 })
	s.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "the server to stop admitting", func() bool { return s.ready(t).Body["reason"] == "shutting down" })
	late := s.execute(t, script("def main():\n    return 'late'"))
	if late.Status != 503 || !strings.HasPrefix(late.Body["error"].(string), "Server shutting down") {
		t.Errorf("request after SIGTERM: %d %s, want 503 Server shutting down", late.Status, late.Raw)
	}
	for want, c := range map[string]chan reply{"running": running, "queued": queued} {
		if r := <-c; r.Status != 200 || r.Body["result"] != want {
			t.Errorf("%s job during shutdown: %d %s", want, r.Status, r.Raw)
		}
	}
	<-s.done // startServer's clean-up checks the exit status and the workers
}

func TestShutdownGraceOverAnswers503(t *testing.T) {
	s := startServer(t, "--pool-size", "1", "--shutdown-grace", "500ms")
	hang := script("import time\ndef main():\n    time.sleep(30)")
	running, queued := make(chan reply, 1), make(chan reply, 1)
	go func() { running <- s.execute(t, hang) }()
	waitFor(t, "the job to start", func() bool { return s.ready(t).Body["busy_workers"] == 1.0 })
	go func() { queued <- s.execute(t, script("def main():\n    return 'queued'")) }()
	waitFor(t, "the second job to queue", func() bool { return s.ready(t).Body["waiting"] == 1.0 })
	s.cmd.Process.Signal(syscall.SIGTERM)
	for name, c := range map[string]chan reply{"running": running, "queued": queued} {
		if r := <-c; r.Status != 503 || !strings.HasPrefix(r.Body["error"].(string), "Server shutting down") {
			t.Errorf("%s job when the grace ran out: %d %s, want 503 Server shutting down", name, r.Status, r.Raw)
		}
	}
	<-s.done // startServer's clean-up checks the exit status and the workers
}

func TestOversizedBodyGets413(t *testing.T) {
	big := `{"script": "` + strings.Repeat("x", 20<<20) + `"}`
	t.Run("client that writes everything before reading", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(shared.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Minute))
		fmt.Fprintf(conn, "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(big))
		if _, err := io.WriteString(conn, big); err != nil {
			t.Fatalf("writing the body: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != 413 || !strings.HasPrefix(body["error"].(string), "Request too large") {
			t.Errorf("got %d %v, want 413 Request too large", resp.StatusCode, body)
		}
	})
	t.Run("python urllib", func(t *testing.T) {
		client := `
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1] + "/execute", data=b'{"script": "' + b"x" * (20 << 20) + b'"}',
                             headers={"Content-Type": "application/json"})
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
`
		out, err := exec.Command("/usr/bin/python3", "-c", client, shared.URL).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), `413 {"error":"Request too large`) {
			t.Errorf("urllib: %v\n%s", err, out)
		}
	})
}
