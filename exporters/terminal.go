package exporters

import (
	"io"
	"os"
)

// colorFor decides whether output to w gets ANSI colours: only when w is a
// terminal, and never when NO_COLOR is set (https://no-color.org) or
// TERM=dumb. A character device is as close to "terminal" as the standard
// library gets without golang.org/x/term; /dev/null is one too, but nobody
// reads the colours there.
func colorFor(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice != 0
}
