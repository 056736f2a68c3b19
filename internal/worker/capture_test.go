package worker

import (
	"bytes"
	"testing"
)

// TestCaptureOutputChunks: the chunks a capture passes on add up to what it
// keeps, and stop at its limit.
func TestCaptureOutputChunks(t *testing.T) {
	c, err := newCapture(10)
	if err != nil {
		t.Fatal(err)
	}
	defer c.r.Close()
	var seen []byte
	c.onChunk = func(b []byte) { seen = append(seen, b...) }
	go c.run()
	c.w.Write([]byte("hello "))
	c.w.Write([]byte("world, and more"))
	c.w.Close()
	<-c.done
	if string(c.buf) != "hello worl" || !bytes.Equal(seen, c.buf) || c.total != 21 {
		t.Errorf("kept %q, passed on %q, counted %d", c.buf, seen, c.total)
	}
}
