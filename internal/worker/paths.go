package worker

import (
	"strings"
	"unicode/utf8"
)

// BadPath says why p cannot name a file in a job's working directory, or
// "" when it can: relative, clean, without "." or ".." components.
func BadPath(p string) string {
	switch {
	case p == "":
		return "is empty"
	case len(p) > 1024:
		return "is longer than 1024 bytes"
	case !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\\"):
		return "must be valid UTF-8 without NUL or backslash"
	case strings.HasPrefix(p, "/"):
		return "must be relative to the working directory"
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
			return "must not have empty or \".\" components"
		case c == "..":
			return "must not have \"..\" components"
		case len(c) > 255:
			return "has a component longer than 255 bytes"
		}
	}
	return ""
}
