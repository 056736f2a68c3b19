// Package sandbox decides how a worker interpreter is confined and builds the
// command that starts it.
//
// Two isolation levels exist. LevelNamespaces runs each worker in a fresh set
// of Linux namespaces (user, pid, network, mount, ipc, uts, cgroup) built by
// bubblewrap, with a read-only /usr, an empty size-capped /tmp and no network
// at all. LevelBasic, for hosts that refuse nested sandboxes (Cloud Run gen1,
// gVisor), runs the interpreter directly with a clean environment, a private
// scratch directory and, when the server is root, a uid per worker. Both
// levels add Landlock (LandlockRules: what a job may read and write, no TCP,
// signals and abstract sockets scoped to the job), the seccomp filter and
// rlimits to every job process (see Seccomp and worker.py).
//
// New probes the host once. It fails closed: when the configuration asks for
// a level the host cannot give, New returns an error instead of a weaker
// Sandbox. A Sandbox is immutable and safe for concurrent use.
package sandbox
