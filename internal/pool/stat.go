package pool

import "fmt"

// Stat is a snapshot of a Pool or a Cold runner.
type Stat struct {
	Size     int // warm workers configured; 0 for Cold
	Idle     int
	Busy     int // running a job, or getting ready for the next one
	Starting int // being started or replaced
	Waiting  int // jobs waiting for a worker
	MaxQueue int
	Closing  bool // Close has been called: no new job is admitted

	Spawns        int64
	SpawnFailures int64
	// SpawnFailing is true when the latest attempt to start a worker failed.
	// Why is in the log, never here: Stat is served to clients.
	SpawnFailing bool
	// Retries counts jobs offered to another worker because the one they
	// were given failed before the job reached it.
	Retries int64
	Kills   map[string]int64 // workers destroyed, by reason
}

// Ready reports whether the runner should be sent more work, and if not, a
// short reason that is the same every time (safe to show anyone): it is
// shutting down, it has no warm worker, or its queue is at least half full
// with no worker idle. (Not "no request waits": a busy pool always has a few
// waiting, and if every replica turned unready at once, a load balancer would
// have nowhere to send anything.)
func (s Stat) Ready() (bool, string) {
	if s.Closing {
		return false, "shutting down"
	}
	if s.Size > 0 && s.Idle+s.Busy == 0 {
		if s.SpawnFailing {
			return false, "no warm workers: workers fail to start, see the server log"
		}
		return false, "no warm workers yet"
	}
	if s.Idle == 0 && s.Waiting > 0 && s.Waiting >= (s.MaxQueue+1)/2 {
		return false, fmt.Sprintf("saturated: %d of %d queue places taken", s.Waiting, s.MaxQueue)
	}
	return true, ""
}
