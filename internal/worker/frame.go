package worker

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MaxFrame is the largest frame either side accepts. worker.py enforces the
// same bound.
const MaxFrame = 64 << 20

const headerSize = 4

// WriteFrame writes payload as one frame: a 4-byte big-endian length, then the
// payload.
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(payload))
	}
	buf := make([]byte, headerSize+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[headerSize:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame of at most max bytes. A frame that announces more
// is an error and the stream must be abandoned: its payload is not consumed.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: header announces %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return payload, nil
}
