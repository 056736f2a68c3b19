package main

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

type scriptedListener struct {
	net.Listener
	errs []error
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	return l.Listener.Accept()
}

// The server keeps accepting when the host runs out of something for a
// while: an outside attack filled the epoll watch budget and accept's
// ENOSPC stopped the server.
func TestListenerOutlastsExhaustedResources(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	enospc := &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENOSPC)}
	ln := steadyListener{Listener: &scriptedListener{Listener: inner,
		errs: []error{enospc, syscall.EMFILE, enospc}}, log: zerolog.Nop()}
	go func() {
		if c, err := net.Dial("tcp", inner.Addr().String()); err == nil {
			c.Close()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept after exhausted resources: %v", err)
	}
	c.Close()
	inner.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}
