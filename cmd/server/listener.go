package main

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// steadyListener keeps accepting through errors that say the process or the
// host is out of something (descriptors, epoll watches, memory), which
// http.Server.Serve would otherwise return with, taking the server down:
// whatever holds the resource (a job) gives it back when it ends.
type steadyListener struct {
	net.Listener
	log zerolog.Logger
}

func (l steadyListener) Accept() (net.Conn, error) {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		c, err := l.Listener.Accept()
		if err == nil || !outOfResource(err) {
			return c, err
		}
		if delay == time.Second {
			l.log.Warn().Err(err).Msg("cannot accept connections: a resource is exhausted; retrying every second")
		}
		time.Sleep(delay)
	}
}

func outOfResource(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOSPC, syscall.ENOMEM, syscall.ENOBUFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
