package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLockUIDsRangesConflictWhereTheyOverlap(t *testing.T) {
	dir := t.TempDir()
	was := uidLockDir
	uidLockDir = dir
	t.Cleanup(func() { uidLockDir = was })

	lock := func(first, n int, shared bool) (*os.File, error) {
		f, err := lockUIDs(first, n, shared)
		if f != nil {
			t.Cleanup(func() { f.Close() })
		}
		return f, err
	}
	a, err := lock(1000, 16, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		first, n int
		shared   bool
	}{{1015, 4, false}, {990, 11, false}, {1000, 1, true}, {1008, 1, false}} {
		if _, err := lock(c.first, c.n, c.shared); !errors.Is(err, errUIDsHeld) {
			t.Errorf("lock(%d, %d, shared=%v) beside 1000-1015: got %v, want errUIDsHeld", c.first, c.n, c.shared, err)
		}
	}
	if _, err := lock(1016, 16, false); err != nil {
		t.Errorf("adjacent range: %v", err)
	}
	// Servers whose workers share one uid share it among themselves, and
	// keep it out of any server's range.
	if _, err := lock(5000, 1, true); err != nil {
		t.Fatal(err)
	}
	if _, err := lock(5000, 1, true); err != nil {
		t.Errorf("second shared lock: %v", err)
	}
	if _, err := lock(4990, 16, false); !errors.Is(err, errUIDsHeld) {
		t.Errorf("range over a shared uid: got %v, want errUIDsHeld", err)
	}
	// The kernel drops a lock with its file, as it does when a server dies.
	a.Close()
	if _, err := lock(1000, 16, false); err != nil {
		t.Errorf("after the holder closed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, uidLockName)); err != nil {
		t.Error(err)
	}
}

func TestSubordinateOverlap(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(file, []byte("alice:100000:65536\n# comment\nbob:165536:65536\nbroken\n"), 0o644)
	for _, c := range []struct {
		first, n int
		want     string
	}{
		{2000000000, 256, ""},
		{99745, 255, ""},
		{99745, 256, file + " gives alice ids 100000-165535"},
		{165535, 2, file + " gives alice ids 100000-165535"},
		{200000, 16, file + " gives bob ids 165536-231071"},
		{231072, 16, ""},
	} {
		if got := subordinateOverlap(file, c.first, c.n); got != c.want {
			t.Errorf("subordinateOverlap(%d, %d) = %q, want %q", c.first, c.n, got, c.want)
		}
	}
	if got := subordinateOverlap(filepath.Join(t.TempDir(), "none"), 0, 1<<30); got != "" {
		t.Errorf("missing file: %q", got)
	}
}

func TestStatusUIDs(t *testing.T) {
	live := []byte("Name:\tsleep\nState:\tS (sleeping)\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\n")
	if diff := cmp.Diff([]int{1000, 1001, 1002, 1003}, statusUIDs(live)); diff != "" {
		t.Error(diff)
	}
	zombie := []byte("Name:\tsleep\nState:\tZ (zombie)\nUid:\t1000\t1000\t1000\t1000\n")
	if got := statusUIDs(zombie); got != nil {
		t.Errorf("zombie: %v", got)
	}
}

func TestBasicNonRootNeedsLandlockSignalScoping(t *testing.T) {
	for _, c := range []struct {
		level  Level
		asRoot bool
		abi    int
		refuse bool
	}{
		{LevelBasic, false, 0, true},
		{LevelBasic, false, 5, true},
		{LevelBasic, false, 6, false},
		{LevelBasic, true, 0, false},
		{LevelNamespaces, false, 0, false},
	} {
		why := sharedUIDRefusal(c.level, c.asRoot, c.abi)
		if (why != "") != c.refuse {
			t.Errorf("level %s, root %v, Landlock ABI %d: refusal %q, want refused=%v", c.level, c.asRoot, c.abi, why, c.refuse)
		}
	}
}
