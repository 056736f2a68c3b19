package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// terminalSafe escapes what a terminal would act on in text that came from
// the server (its errors, the job's output in the printed JSON): control
// characters but newline and tab (escape sequences: a window title, OSC 52
// writing the clipboard, a cleared screen), DEL, C1 controls, bytes that are
// not UTF-8, and bidirectional overrides, each as \uXXXX, which is also
// what it means inside a JSON string. (A hostile server printed a fake
// "healthy" over a cleared screen: outside attack round 13.)
func terminalSafe(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteRune(r) // a real U+FFFD
		case r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, s[i]) // a byte that is not UTF-8: ESC-free, visible
		case r < 0x20 && r != '\n' && r != '\t', r >= 0x7f && r <= 0x9f, bidiControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// bidiControl reports the characters that reorder how a line displays.
func bidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}
