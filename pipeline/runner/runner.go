// Package runner runs irsa's stages along the stage graph (stage.Needs, stage.DeleteNeeds) in one of three modes (plan, apply, delete):
// a stage starts as soon as the stages it needs have succeeded, so independent stages (the AWS stages and the
// webhook rollout) overlap. It reports a start and an end event per stage with the outcome and duration, and gathers a
// report that renders as text or stable JSON.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
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

// Event reports a stage starting (Done false) or ending (Done true). Events of stages that run concurrently
// interleave; each names its stage.
type Event struct {
	Stage    string
	Mode     Mode
	Done     bool
	Changes  []stage.Change
	Duration time.Duration
	Err      error
	// Skipped says why the stage did not run.
	Skipped string
	// Waiting, on an event that is not Done, says what the running stage now waits for (stage.Waiting).
	Waiting string
}

// Runner holds the stages and the graph that orders them.
type Runner struct {
	// Stages are the stages to run; their order is the order of the report.
	Stages []stage.Stage
	// Needs is the stage graph of plan and apply: stage name to the names of the stages that must succeed before it
	// starts; DeleteNeeds is teardown's. Nil means stage.Needs and stage.DeleteNeeds. Needs that name a stage not in
	// this run (left out by --only) are met.
	Needs, DeleteNeeds map[string][]string
	// Skip maps a stage name to why it cannot run here (say, no cluster configured).
	Skip map[string]string
	// IfChanged names stages that Apply runs only when another stage changed something in this run (the verify
	// stage: a run that changed nothing has nothing new to prove, and proving costs a Job and an IAM role). They
	// start after every other stage has ended. Force runs them regardless.
	IfChanged []string
	Force     bool
	Progress  func(Event)
	Log       *slog.Logger

	mu sync.Mutex // serialises Progress calls
}

// StageResult is one stage's part of the report.
type StageResult struct {
	Name       string         `json:"name"`
	Changes    []stage.Change `json:"changes"`
	DurationMS int64          `json:"durationMs"`
	Skipped    string         `json:"skipped,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// Report is the outcome of a run. Stages appear in the runner's order; a failed run still lists what every stage
// changed before the failure.
type Report struct {
	Mode   Mode          `json:"mode"`
	Stages []StageResult `json:"stages"`
	// Changed is true when any stage changed (or, in plan mode, would change) something.
	Changed bool `json:"changed"`
	// Calls counts what the run asked of AWS and the cluster, when the caller fills it in.
	Calls *Calls `json:"calls,omitempty"`
}

// Calls counts a run's requests: reads, and the requests that could change something ("Service:Operation" for AWS,
// "METHOD path" for the cluster). A run that changed nothing has no writes.
type Calls struct {
	AWSReads      int      `json:"awsReads"`
	AWSWrites     []string `json:"awsWrites"`
	ClusterReads  int      `json:"clusterReads"`
	ClusterWrites []string `json:"clusterWrites"`
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

// node is one stage's place in a run.
type node struct {
	s    stage.Stage
	deps []string
	done chan struct{}
	// set before done is closed
	res StageResult
	ok  bool
	// prepare is the stage's Prepare step (stage.Preparer) in apply mode, nil otherwise.
	prepare *prepareNode
}

// prepareNode is a Preparer's Prepare placed in the graph (stage.PrepareNeeds, stage.PrepareBefore). It never blocks
// the stages after it: a failed or skipped Prepare leaves the work to Apply.
type prepareNode struct {
	deps     []string
	done     chan struct{}
	prepared bool
	changes  []stage.Change
}

// Run runs the stages (those named in only, or all) along the graph (Needs, or DeleteNeeds in Delete mode): a stage
// starts once the stages it needs have ended well. A failed stage
// stops the stages that depend on it; stages on other branches still run to the end. The error joins every stage's
// error ("stage NAME: ..."). The report covers every selected stage.
func (r *Runner) Run(ctx context.Context, mode Mode, only []string) (*Report, error) {
	if mode != Plan && mode != Apply && mode != Delete {
		return &Report{Mode: mode}, fmt.Errorf("mode %q: must be plan, apply or delete", mode)
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	needs := r.Needs
	if needs == nil {
		needs = stage.Needs
	}
	if mode == Delete {
		needs = r.DeleteNeeds
		if needs == nil {
			needs = stage.DeleteNeeds
		}
	}
	nodes := map[string]*node{}
	var order []string
	for _, s := range r.Stages {
		if len(only) > 0 && !slices.Contains(only, s.Name()) {
			continue
		}
		nodes[s.Name()] = &node{s: s, done: make(chan struct{})}
		order = append(order, s.Name())
	}
	for name, n := range nodes {
		for _, d := range needs[name] {
			if _, ok := nodes[d]; ok {
				n.deps = append(n.deps, d)
			}
		}
		slices.Sort(n.deps)
	}
	if err := checkAcyclic(nodes); err != nil {
		return &Report{Mode: mode}, err
	}
	if mode == Apply {
		for name, n := range nodes {
			if _, ok := n.s.(stage.Preparer); !ok || stage.PrepareNeeds[name] == nil {
				continue
			}
			n.prepare = &prepareNode{done: make(chan struct{})}
			for _, d := range stage.PrepareNeeds[name] {
				if _, ok := nodes[d]; ok && d != name {
					n.prepare.deps = append(n.prepare.deps, d)
				}
			}
		}
	}

	var wg sync.WaitGroup
	for _, name := range order {
		if p := nodes[name].prepare; p != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.runPrepare(ctx, nodes, nodes[name], log)
			}()
		}
	}
	last := map[string]bool{} // IfChanged stages, run after all others in apply mode
	for _, name := range order {
		if mode == Apply && slices.Contains(r.IfChanged, name) {
			last[name] = true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runNode(ctx, mode, nodes, nodes[name], log)
		}()
	}
	wg.Wait()
	if len(last) > 0 {
		changed := false
		for _, n := range nodes {
			changed = changed || stage.Changed(n.res.Changes)
		}
		for _, name := range order {
			if !last[name] {
				continue
			}
			n := nodes[name]
			if !changed && !r.Force {
				n.res = StageResult{Name: name, Skipped: "nothing changed (--verify runs it anyway)", Changes: []stage.Change{}}
				n.ok = true
				close(n.done)
				r.emit(Event{Stage: name, Mode: mode, Done: true, Skipped: n.res.Skipped})
				continue
			}
			r.runNode(ctx, mode, nodes, n, log)
		}
	}
	// What a Prepare made belongs to its stage's report; when the stage itself did not run, it is removed again.
	for _, name := range order {
		n := nodes[name]
		if n.prepare == nil || !n.prepare.prepared {
			continue
		}
		n.res.Changes = append(slices.Clone(n.prepare.changes), n.res.Changes...)
		if n.res.Skipped != "" { // the stage itself did not run
			cctx := context.WithoutCancel(ctx)
			removed, err := n.s.Delete(cctx)
			n.res.Changes = append(n.res.Changes, removed...)
			if err != nil {
				n.res.Error = fmt.Sprintf("remove what prepare made: %v", err)
			}
		}
	}

	rep := &Report{Mode: mode}
	var errs []error
	for _, name := range order {
		n := nodes[name]
		rep.Stages = append(rep.Stages, n.res)
		rep.Changed = rep.Changed || stage.Changed(n.res.Changes)
		if n.res.Error != "" {
			errs = append(errs, fmt.Errorf("stage %s: %s", name, n.res.Error))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("%s stopped: %w", mode, err)
	}
	return rep, nil
}

// runPrepare waits for the Prepare step's dependencies and, when they succeeded and something in the run changed,
// calls Prepare. It closes its done channel whatever happens: the stages after it always go on.
func (r *Runner) runPrepare(ctx context.Context, nodes map[string]*node, n *node, log *slog.Logger) {
	p := n.prepare
	defer close(p.done)
	for _, d := range p.deps {
		select {
		case <-nodes[d].done:
		case <-ctx.Done():
			return
		}
		if !nodes[d].ok {
			return
		}
	}
	changed := r.Force
	for _, other := range nodes {
		if other == n {
			continue
		}
		select {
		case <-other.done:
			changed = changed || len(other.res.Changes) > 0
		default:
		}
	}
	if !changed {
		return
	}
	name := n.s.Name()
	r.emit(Event{Stage: name, Mode: "prepare"})
	start := time.Now()
	changes, err := n.s.(stage.Preparer).Prepare(r.waitingContext(ctx, name, "prepare"))
	d := time.Since(start)
	if err != nil {
		log.Warn("prepare failed; apply prepares again", "stage", name, "error", err)
	}
	p.changes, p.prepared = changes, err == nil || len(changes) > 0
	r.emit(Event{Stage: name, Mode: "prepare", Done: true, Changes: changes, Duration: d, Err: err})
}

// runNode waits for the node's dependencies, runs it unless one of them failed, and records the result.
func (r *Runner) runNode(ctx context.Context, mode Mode, nodes map[string]*node, n *node, log *slog.Logger) {
	name := n.s.Name()
	defer close(n.done)
	for other, before := range stage.PrepareBefore {
		if o, ok := nodes[other]; ok && o.prepare != nil && slices.Contains(before, name) {
			select {
			case <-o.prepare.done:
			case <-ctx.Done():
			}
		}
	}
	for _, d := range n.deps {
		select {
		case <-nodes[d].done:
		case <-ctx.Done():
		}
	}
	for _, d := range n.deps {
		dn := nodes[d]
		select {
		case <-dn.done:
			if !dn.ok {
				n.res = StageResult{Name: name, Skipped: fmt.Sprintf("not run: stage %s did not succeed", d), Changes: []stage.Change{}}
				r.emit(Event{Stage: name, Mode: mode, Done: true, Skipped: n.res.Skipped})
				return
			}
		default: // the context ended first
		}
	}
	if reason, ok := r.Skip[name]; ok {
		n.res = StageResult{Name: name, Skipped: reason, Changes: []stage.Change{}}
		n.ok = true
		r.emit(Event{Stage: name, Mode: mode, Done: true, Skipped: reason})
		return
	}
	if err := ctx.Err(); err != nil {
		n.res = StageResult{Name: name, Skipped: "not run: " + err.Error(), Changes: []stage.Change{}}
		r.emit(Event{Stage: name, Mode: mode, Done: true, Skipped: n.res.Skipped})
		return
	}
	r.emit(Event{Stage: name, Mode: mode})
	log.Info("stage start", "stage", name, "mode", mode)
	start := time.Now()
	var (
		changes []stage.Change
		err     error
	)
	ctx = r.waitingContext(ctx, name, mode)
	switch mode {
	case Plan:
		changes, err = n.s.Plan(ctx)
	case Apply:
		changes, err = n.s.Apply(ctx)
	case Delete:
		changes, err = n.s.Delete(ctx)
	}
	d := time.Since(start)
	log.Info("stage end", "stage", name, "mode", mode, "changes", len(changes), "duration", d, "error", err)
	n.res = StageResult{Name: name, Changes: changes, DurationMS: d.Milliseconds()}
	if n.res.Changes == nil {
		n.res.Changes = []stage.Change{}
	}
	if err != nil {
		n.res.Error = err.Error()
	}
	n.ok = err == nil
	r.emit(Event{Stage: name, Mode: mode, Done: true, Changes: changes, Duration: d, Err: err})
}

// checkAcyclic refuses a graph with a cycle, which would leave its stages waiting for ever.
func checkAcyclic(nodes map[string]*node) error {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string, []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("stage graph has a cycle: %s", strings.Join(append(path, name), " -> "))
		case 2:
			return nil
		}
		state[name] = 1
		for _, d := range nodes[name].deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		return nil
	}
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return err
		}
	}
	return nil
}

// waitingContext gives a stage's context a stage.Waiting reporter that emits a progress event of that stage.
func (r *Runner) waitingContext(ctx context.Context, name string, mode Mode) context.Context {
	return stage.WithWaiting(ctx, func(what string) { r.emit(Event{Stage: name, Mode: mode, Waiting: what}) })
}

func (r *Runner) emit(e Event) {
	if r.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Progress(e)
}
