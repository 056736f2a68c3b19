package worker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	payloads := [][]byte{{}, []byte(`{"type":"ready"}`), bytes.Repeat([]byte("x"), 100000)}
	for _, p := range payloads {
		if err := WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range payloads {
		got, err := ReadFrame(&buf, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("payload mismatch (-want +got):\n%s", diff)
		}
	}
	if _, err := ReadFrame(&buf, 1<<20); !errors.Is(err, io.EOF) {
		t.Errorf("ReadFrame at end = %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"over limit", header(11), ErrFrameTooLarge},
		{"huge header", header(0xffffffff), ErrFrameTooLarge},
		{"short header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"short payload", append(header(5), "abc"...), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.input), 10)
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadFrame = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWriteFrameTooLarge(t *testing.T) {
	if err := WriteFrame(io.Discard, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("WriteFrame = %v, want ErrFrameTooLarge", err)
	}
}

// FuzzReadFrame checks that no input makes the decoder panic, allocate past
// its limit, or return a payload that does not match the header.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0, 0, 0, 0})
	const limit = 1 << 12
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			p, err := ReadFrame(r, limit)
			if err != nil {
				return
			}
			if len(p) > limit {
				t.Fatalf("payload of %d bytes passed limit %d", len(p), limit)
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, p); err != nil {
				t.Fatal(err)
			}
			again, err := ReadFrame(&buf, limit)
			if err != nil || !bytes.Equal(again, p) {
				t.Fatalf("re-encoding changed the frame: %v", err)
			}
		}
	})
}

func BenchmarkFrameRoundTrip(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 1 << 20} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			payload := bytes.Repeat([]byte("x"), size)
			var buf bytes.Buffer
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := WriteFrame(&buf, payload); err != nil {
					b.Fatal(err)
				}
				if _, err := ReadFrame(&buf, MaxFrame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
