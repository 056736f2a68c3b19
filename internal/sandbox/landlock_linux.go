package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// LandlockFullABI is the first Landlock ABI that gives every layer the
// sandbox uses: filesystem (1), truncate (3), TCP (4), device ioctls (5) and
// the scoping of signals and abstract unix sockets to the job (6).
const LandlockFullABI = 6

// landlockABI returns the kernel's Landlock ABI version, or 0 and why not.
// (The rules themselves are applied by the job process, in Python; the Go
// side only asks the kernel which version it speaks. go-landlock's own
// probe would link libpsx into the server for nothing.)
func landlockABI() (int, string) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0, fmt.Sprintf("Landlock unavailable: %v", errno)
	}
	return int(v), ""
}
