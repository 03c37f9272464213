package cli

import (
	"bufio"
	"os"
	"strings"

	"encoding/json"
	"fmt"
	"golang.org/x/term"
	"io"
	"sigs.k8s.io/yaml"
	"time"

	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Output formats of -o.
const (
	outputText = "text"
	outputJSON = "json"
	outputYAML = "yaml"
)

// structured says whether results are printed as JSON or YAML rather than text.
func (g *globalOptions) structured() bool { return g.output == outputJSON || g.output == outputYAML }

// write prints v as JSON or YAML, as -o asks; the shape is the same in both.
func (g *globalOptions) write(v any) error {
	if g.output == outputYAML {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(data)
		if err != nil {
			return err
		}
		_, err = g.stdout.Write(y)
		return err
	}
	return writeJSON(g.stdout, v)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

var actionSigns = map[stage.Action]string{stage.Create: "+", stage.Update: "~", stage.Delete: "-", stage.Keep: "="}

// writeReport prints what each stage changed (or would change), stage by stage, then the summary line; a run that
// failed says so instead of a summary that reads as success.
func writeReport(w io.Writer, rep *runner.Report, failed bool) {
	for _, s := range rep.Stages {
		if len(s.Changes) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n", s.Name)
		writeChanges(w, "  ", s.Changes)
	}
	if failed {
		verb := map[runner.Mode]string{runner.Plan: "Plan", runner.Apply: "Apply", runner.Delete: "Teardown"}[rep.Mode]
		fmt.Fprintf(w, "%s failed after %d change(s); see the errors on stderr.\n", verb, countChanges(rep))
		return
	}
	fmt.Fprintln(w, summary(rep))
}

func round(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

func countChanges(r *runner.Report) int {
	n := 0
	for _, s := range r.Stages {
		n += len(s.Changes)
	}
	return n
}

func summary(r *runner.Report) string {
	n := countChanges(r)
	switch r.Mode {
	case runner.Plan:
		if n == 0 {
			return "Plan: nothing to change."
		}
		return fmt.Sprintf("Plan: %d change(s). Run `irsa apply` to make them.", n)
	case runner.Delete:
		return fmt.Sprintf("Teardown: %d object(s) removed.", n)
	}
	return fmt.Sprintf("Apply: %d change(s).", n)
}

// writeChanges prints one line per change: its sign (+ create, ~ update, - delete), kind, name and detail.
func writeChanges(w io.Writer, indent string, changes []stage.Change) {
	for _, c := range changes {
		line := fmt.Sprintf("%s%s %s %s", indent, actionSigns[c.Action], c.Kind, c.Name)
		if c.Detail != "" {
			line += " (" + c.Detail + ")"
		}
		fmt.Fprintln(w, line)
		if c.Disruption != "" {
			fmt.Fprintf(w, "%s  ! %s\n", indent, c.Disruption)
		}
	}
}

func nonNil(c []stage.Change) []stage.Change {
	if c == nil {
		return []stage.Change{}
	}
	return c
}

// stdin and stdinIsTerminal are where confirmations are read (replaced in tests).
var (
	stdin           io.Reader = os.Stdin
	stdinIsTerminal           = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }
)

// confirm shows what a destructive command will remove and asks on a terminal. Without a terminal it refuses unless
// --yes was given, so a script never removes something by accident.
func (g *globalOptions) confirm(command string, removes []string, yes bool) error {
	if yes {
		return nil
	}
	if !stdinIsTerminal() {
		return fmt.Errorf("%s removes:\n  %s\nstdin is not a terminal, so irsa cannot ask: run again with --yes to confirm", command, strings.Join(removes, "\n  "))
	}
	fmt.Fprintf(g.stderr, "%s removes:\n  %s\nType yes to continue: ", command, strings.Join(removes, "\n  "))
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	if strings.TrimSpace(answer) != "yes" {
		return fmt.Errorf("%s: not confirmed, nothing was changed", command)
	}
	return nil
}
