// Package runner runs irsa's stages in order, in one of three modes (plan, apply, delete), reports one progress event
// per stage with its outcome and duration, and gathers a report that renders as text or stable JSON.
package runner

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Mode is what the runner asks of each stage.
type Mode string

const (
	Plan   Mode = "plan"
	Apply  Mode = "apply"
	Delete Mode = "delete"
)

// Event reports a stage starting (Done false) or ending (Done true).
type Event struct {
	Stage    string
	Mode     Mode
	Done     bool
	Changes  []stage.Change
	Duration time.Duration
	Err      error
	// Skipped says why the stage did not run.
	Skipped string
}

// Runner holds the ordered stages.
type Runner struct {
	Stages []stage.Stage
	// Skip maps a stage name to why it cannot run here (say, no cluster configured).
	Skip     map[string]string
	Progress func(Event)
	Log      *slog.Logger
}

// StageResult is one stage's part of the report.
type StageResult struct {
	Name       string         `json:"name"`
	Changes    []stage.Change `json:"changes"`
	DurationMS int64          `json:"durationMs"`
	Skipped    string         `json:"skipped,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Mode   Mode          `json:"mode"`
	Stages []StageResult `json:"stages"`
	// Changed is true when any stage changed (or, in plan mode, would change) something.
	Changed bool `json:"changed"`
}

// ParseOnly checks a --only list against the known stage names.
func ParseOnly(list []string) ([]string, error) {
	var out []string
	for _, item := range list {
		for _, n := range strings.Split(item, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if !slices.Contains(stage.Order, n) {
				return nil, fmt.Errorf("stage %q: unknown, must be one of %s", n, strings.Join(stage.Order, ", "))
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// Run runs the stages (those named in only, or all) in order, or in reverse order for Delete, and stops at the first
// error. The report covers every stage that ran.
func (r *Runner) Run(ctx context.Context, mode Mode, only []string) (*Report, error) {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stages := slices.Clone(r.Stages)
	if mode == Delete {
		slices.Reverse(stages)
	}
	rep := &Report{Mode: mode}
	for _, s := range stages {
		name := s.Name()
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		if reason, ok := r.Skip[name]; ok {
			rep.Stages = append(rep.Stages, StageResult{Name: name, Skipped: reason, Changes: []stage.Change{}})
			r.emit(Event{Stage: name, Mode: mode, Done: true, Skipped: reason})
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("%s stopped before stage %s: %w", mode, name, err)
		}
		r.emit(Event{Stage: name, Mode: mode})
		log.Info("stage start", "stage", name, "mode", mode)
		start := time.Now()
		var (
			changes []stage.Change
			err     error
		)
		switch mode {
		case Plan:
			changes, err = s.Plan(ctx)
		case Apply:
			changes, err = s.Apply(ctx)
		case Delete:
			changes, err = s.Delete(ctx)
		default:
			return rep, fmt.Errorf("mode %q: must be plan, apply or delete", mode)
		}
		d := time.Since(start)
		log.Info("stage end", "stage", name, "mode", mode, "changes", len(changes), "duration", d, "error", err)
		res := StageResult{Name: name, Changes: changes, DurationMS: d.Milliseconds()}
		if res.Changes == nil {
			res.Changes = []stage.Change{}
		}
		if err != nil {
			res.Error = err.Error()
		}
		rep.Stages = append(rep.Stages, res)
		rep.Changed = rep.Changed || len(changes) > 0
		r.emit(Event{Stage: name, Mode: mode, Done: true, Changes: changes, Duration: d, Err: err})
		if err != nil {
			return rep, fmt.Errorf("stage %s: %w", name, err)
		}
	}
	return rep, nil
}

func (r *Runner) emit(e Event) {
	if r.Progress != nil {
		r.Progress(e)
	}
}
