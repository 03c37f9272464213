package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

func feed(p *progress) {
	p.Event(runner.Event{Stage: stage.Webhook, Mode: runner.Apply})
	p.Event(runner.Event{Stage: stage.Webhook, Mode: runner.Apply, Waiting: "Deployment irsa/webhook to roll out (up to 5m0s)"})
	p.Event(runner.Event{Stage: stage.Webhook, Mode: runner.Apply, Waiting: "Deployment irsa/webhook to roll out (up to 5m0s)"})
	p.Event(runner.Event{Stage: stage.Webhook, Mode: runner.Apply, Done: true, Duration: 3 * time.Second,
		Changes: []stage.Change{{Action: stage.Create, Kind: "deployment", Name: "irsa/webhook"}}})
	p.Event(runner.Event{Stage: stage.Verify, Mode: runner.Apply, Done: true, Skipped: "nothing changed"})
	p.Event(runner.Event{Stage: stage.Issuer, Mode: runner.Apply, Done: true, Err: errors.New("boom")})
	p.Close()
}

// Not a terminal (a log, a pipe): plain permanent lines, each wait once, no escape codes at all.
func TestProgressPlain(t *testing.T) {
	var buf bytes.Buffer
	feed(newProgress(&buf))
	out := buf.String()
	want := "• webhook    apply started\n" +
		"… webhook    waiting for Deployment irsa/webhook to roll out (up to 5m0s)\n" +
		"✓ webhook    1 changed      3s\n" +
		"- verify     skipped: nothing changed\n" +
		"✗ issuer     apply failed after 0s: boom\n"
	if out != want {
		t.Errorf("plain progress:\n%q\nwant\n%q", out, want)
	}
}

// On a terminal: a spinner line redrawn in place below the permanent lines, coloured marks, and no colour with
// NO_COLOR (the spinner stays).
func TestProgressTerminal(t *testing.T) {
	old := terminalOf
	terminalOf = func(io.Writer) (bool, int) { return true, 60 }
	t.Cleanup(func() { terminalOf = old })
	for _, noColor := range []string{"", "1"} {
		t.Setenv("NO_COLOR", noColor)
		t.Setenv("TERM", "xterm")
		var buf bytes.Buffer
		p := newProgress(&buf)
		feed(p) // a stage start draws the spinner line at once; the ticker only animates it
		out := buf.String()
		if !strings.Contains(out, "\r\x1b[K") || !strings.Contains(out, "webhook 0s") {
			t.Errorf("NO_COLOR=%q: no spinner line naming the running stage:\n%q", noColor, out)
		}
		coloured := strings.Contains(out, "\x1b[32m✓\x1b[0m") && strings.Contains(out, "\x1b[31m✗\x1b[0m")
		if coloured != (noColor == "") {
			t.Errorf("NO_COLOR=%q: coloured marks %v:\n%q", noColor, coloured, out)
		}
		if !strings.HasSuffix(out, "\r\x1b[K") && !strings.HasSuffix(out, "\n") {
			t.Errorf("NO_COLOR=%q: the spinner line is left on screen:\n%q", noColor, out)
		}
	}
}
