package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// output prints results: JSON on stdout with --json, human text otherwise,
// nothing with --quiet; progress goes to stderr when it is a terminal.
type output struct {
	stdout, stderr io.Writer
	json, quiet    bool
	progress       bool

	mu       sync.Mutex
	lastLine time.Time
}

func newOutput(stdout, stderr io.Writer, g Globals) *output {
	o := &output{stdout: stdout, stderr: stderr, json: g.JSON, quiet: g.Quiet}
	if f, ok := stderr.(*os.File); ok && !g.NoProgress && !g.Quiet {
		o.progress = term.IsTerminal(int(f.Fd()))
	}
	return o
}

// result prints v as JSON, or calls human to print text.
func (o *output) result(v any, human func(w io.Writer)) error {
	if o.json {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	if !o.quiet {
		human(o.stdout)
	}
	return nil
}

// warn prints a warning line on stderr (unless --quiet).
func (o *output) warn(format string, args ...any) {
	if !o.quiet {
		fmt.Fprintf(o.stderr, "publish: warning: "+format+"\n", args...)
	}
}

// loud prints a warning that --quiet does not silence: what an operator
// must not miss (an untested release).
func (o *output) loud(line string) {
	fmt.Fprintf(o.stderr, "publish: WARNING: %s\n", line)
}

// note prints a progress line on stderr (unless --quiet): what a long
// command is doing.
func (o *output) note(format string, args ...any) {
	if !o.quiet {
		fmt.Fprintf(o.stderr, "publish: "+format+"\n", args...)
	}
}

// progressFunc returns a callback drawing one updating line per file on a
// terminal, or nil when progress is off.
func (o *output) progressFunc(verb string) func(path string, done, total int64) {
	if !o.progress {
		return nil
	}
	start := time.Now()
	return func(path string, done, total int64) {
		o.mu.Lock()
		defer o.mu.Unlock()
		final := done == total
		if !final && time.Since(o.lastLine) < 200*time.Millisecond {
			return
		}
		o.lastLine = time.Now()
		rate := float64(done) / max(time.Since(start).Seconds(), 0.001)
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(o.stderr, "\r\033[K%s %s: %5.1f%% of %s (%s/s)", verb, shortPath(path), pct, humanBytes(total), humanBytes(int64(rate)))
		if final {
			fmt.Fprintln(o.stderr)
			start = time.Now()
		}
	}
}

func shortPath(p string) string {
	if len(p) > 48 {
		return "…" + p[len(p)-47:]
	}
	return p
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// oneLine folds a multi-line error message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
