package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// terminalOf reports whether w is a terminal, and its width (replaced in tests).
var terminalOf = func(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width < 20 {
		width = 80
	}
	return true, width
}

// useColor says whether progress may be coloured: on a terminal, unless NO_COLOR is set to anything
// (https://no-color.org) or TERM is dumb.
func useColor(terminal bool) bool {
	return terminal && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// progress prints a run's progress on stderr as kind does: a line when a stage starts, one when it waits for
// something (what, and for how long at most), and one when it ends with a check or a cross, the number of changes and
// the time. On a terminal a spinner line below them names the stages still running and how long each has run, and
// the marks are coloured unless NO_COLOR is set; otherwise every line is plain and permanent, for logs.
type progress struct {
	w        io.Writer
	terminal bool
	width    int
	color    bool

	mu      sync.Mutex
	running map[string]time.Time
	waiting map[string]string
	frame   int
	shown   bool // a spinner line is on screen
	stop    chan struct{}
	stopped chan struct{}
}

func newProgress(w io.Writer) *progress {
	terminal, width := terminalOf(w)
	p := &progress{w: w, terminal: terminal, width: width, color: useColor(terminal), running: map[string]time.Time{}, waiting: map[string]string{}}
	if terminal {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.spin()
	}
	return p
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (p *progress) spin() {
	defer close(p.stopped)
	t := time.NewTicker(120 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.frame++
			p.redraw()
			p.mu.Unlock()
		}
	}
}

// Close ends the spinner and clears its line.
func (p *progress) Close() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// redraw writes the spinner line: the running stages, each with its time so far, cut to the terminal's width.
func (p *progress) redraw() {
	if !p.terminal || len(p.running) == 0 {
		p.clear()
		return
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range p.running {
			if !yield(n) {
				return
			}
		}
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %s", n, time.Since(p.running[n]).Round(time.Second))
	}
	line := spinnerFrames[p.frame%len(spinnerFrames)] + " " + strings.Join(parts, ", ")
	if r := []rune(line); len(r) > p.width-1 {
		line = string(r[:p.width-2]) + "…"
	}
	fmt.Fprint(p.w, "\r\x1b[K"+p.paint("36", line))
	p.shown = true
}

// paint colours s with the ANSI SGR code when colour is on.
func (p *progress) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// println prints a permanent line above the spinner.
func (p *progress) println(format string, args ...any) {
	p.clear()
	fmt.Fprintf(p.w, format+"\n", args...)
	p.redraw()
}

// Event implements runner.Runner.Progress.
func (p *progress) Event(e runner.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.Waiting != "":
		if p.waiting[e.Stage] == e.Waiting {
			return
		}
		p.waiting[e.Stage] = e.Waiting
		p.println("%s %-10s waiting for %s", p.paint("33", "…"), e.Stage, e.Waiting)
	case !e.Done:
		p.running[e.Stage] = time.Now()
		p.println("• %-10s %s started", e.Stage, e.Mode)
	case e.Skipped != "":
		delete(p.running, e.Stage)
		p.println("%s %-10s skipped: %s", p.paint("2", "-"), e.Stage, e.Skipped)
	case e.Err != nil:
		delete(p.running, e.Stage)
		p.println("%s %-10s %s failed after %s: %v", p.paint("31", "✗"), e.Stage, e.Mode, round(e.Duration), e.Err)
		p.clear()
		writeChanges(p.w, "    ", e.Changes)
		p.redraw()
	default:
		delete(p.running, e.Stage)
		summary := "no changes"
		if n := len(e.Changes); n > 0 {
			verb := "changed"
			if e.Mode == runner.Plan {
				verb = "to change"
			}
			summary = fmt.Sprintf("%d %s", n, verb)
		}
		p.println("%s %-10s %-14s %s", p.paint("32", "✓"), e.Stage, summary, round(e.Duration))
	}
}

// Context returns ctx whose stage.Waiting calls print as name's waits: for the commands that call one stage's
// functions outside the runner (bind, verify).
func (p *progress) Context(ctx context.Context, name string) context.Context {
	return stage.WithWaiting(ctx, func(what string) { p.Event(runner.Event{Stage: name, Waiting: what}) })
}

// progress returns the command's progress printer: one that prints nothing under -q.
func (g *globalOptions) progress() *progress {
	if g.quiet {
		return newProgress(io.Discard)
	}
	return newProgress(g.stderr)
}
