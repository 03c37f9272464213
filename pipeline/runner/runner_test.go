package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// journal records stage starts and ends from concurrent goroutines.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) snapshot() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

type fakeStage struct {
	name string
	j    *journal
	err  error
	// wait, when set, is called between start and end (to hold a stage open while another must be seen running).
	wait    func(ctx context.Context) error
	noDelta bool
}

func (f fakeStage) Name() string { return f.name }
func (f fakeStage) run(ctx context.Context, mode string) ([]stage.Change, error) {
	f.j.add("start:" + mode + ":" + f.name)
	defer f.j.add("end:" + mode + ":" + f.name)
	if f.wait != nil {
		if err := f.wait(ctx); err != nil {
			return nil, err
		}
	}
	changes := []stage.Change{{Action: stage.Create, Kind: "thing", Name: f.name}}
	if f.noDelta {
		changes = nil
	}
	return changes, f.err
}
func (f fakeStage) Plan(ctx context.Context) ([]stage.Change, error)   { return f.run(ctx, "plan") }
func (f fakeStage) Apply(ctx context.Context) ([]stage.Change, error)  { return f.run(ctx, "apply") }
func (f fakeStage) Delete(ctx context.Context) ([]stage.Change, error) { return f.run(ctx, "delete") }

func newRunner(j *journal, mod func(*fakeStage)) *Runner {
	var stages []stage.Stage
	for _, n := range stage.Order {
		s := fakeStage{name: n, j: j}
		if mod != nil {
			mod(&s)
		}
		stages = append(stages, s)
	}
	return &Runner{Stages: stages}
}

// ran lists the stages that started, in the order they started.
func ran(events []string, mode Mode) []string {
	var out []string
	for _, e := range events {
		if n, ok := strings.CutPrefix(e, "start:"+string(mode)+":"); ok {
			out = append(out, n)
		}
	}
	return out
}

// assertGraphOrder fails when a stage started before a stage it depends on (in mode's direction) ended.
func assertGraphOrder(t *testing.T, events []string, mode Mode) {
	t.Helper()
	pos := map[string]int{}
	for i, e := range events {
		pos[e] = i
	}
	graph := stage.Needs
	if mode == Delete {
		graph = stage.DeleteNeeds
	}
	for name, needs := range graph {
		for _, d := range needs {
			first, then := d, name
			s, okS := pos["start:"+string(mode)+":"+then]
			e, okE := pos["end:"+string(mode)+":"+first]
			if okS && okE && s < e {
				t.Errorf("%s %s started before %s ended: %v", mode, then, first, events)
			}
		}
	}
}

func TestOrderIsTopological(t *testing.T) {
	for i, name := range stage.Order {
		for _, d := range stage.Needs[name] {
			if j := slices.Index(stage.Order, d); j < 0 || j > i {
				t.Errorf("stage.Order lists %s before %s, which it needs", name, d)
			}
		}
	}
	if len(stage.Needs) != len(stage.Order) || len(stage.DeleteNeeds) != len(stage.Order) {
		t.Errorf("stage.Needs has %d stages, stage.DeleteNeeds %d, stage.Order %d", len(stage.Needs), len(stage.DeleteNeeds), len(stage.Order))
	}
	// Teardown restores the apiserver before the provider and issuer go, and after the cluster objects are gone.
	for _, pair := range [][2]string{{stage.APIServer, stage.Provider}, {stage.APIServer, stage.Issuer}, {stage.Webhook, stage.APIServer}, {stage.Bindings, stage.APIServer}} {
		if !dependsOn(stage.DeleteNeeds, pair[1], pair[0]) {
			t.Errorf("teardown of %s does not wait for %s", pair[1], pair[0])
		}
	}
}

func TestRunFollowsTheGraph(t *testing.T) {
	for _, mode := range []Mode{Plan, Apply, Delete} {
		t.Run(string(mode), func(t *testing.T) {
			j := &journal{}
			r := newRunner(j, nil)
			r.Force = true
			rep, err := r.Run(context.Background(), mode, nil)
			if err != nil {
				t.Fatal(err)
			}
			events := j.snapshot()
			if got := ran(events, mode); len(got) != len(stage.Order) {
				t.Errorf("ran %v, want every stage", got)
			}
			assertGraphOrder(t, events, mode)
			var names []string
			for _, s := range rep.Stages {
				names = append(names, s.Name)
			}
			if !slices.Equal(names, stage.Order) || !rep.Changed {
				t.Errorf("report lists %v (changed %v), want %v", names, rep.Changed, stage.Order)
			}
		})
	}
}

// The webhook needs none of the AWS stages: it must be running while they run. keys holds until the webhook has
// started; a runner that ran one stage at a time would deadlock and hit the deadline.
func TestIndependentStagesOverlap(t *testing.T) {
	j := &journal{}
	webhookStarted := make(chan struct{})
	r := newRunner(j, func(s *fakeStage) {
		switch s.name {
		case stage.Webhook:
			s.wait = func(context.Context) error { close(webhookStarted); return nil }
		case stage.Keys:
			s.wait = func(ctx context.Context) error {
				select {
				case <-webhookStarted:
					return nil
				case <-ctx.Done():
					return errors.New("webhook never started while keys ran")
				}
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.Run(ctx, Apply, nil); err != nil {
		t.Fatal(err)
	}
}

func TestFailureStopsDependantsOnly(t *testing.T) {
	j := &journal{}
	r := newRunner(j, func(s *fakeStage) {
		if s.name == stage.Provider {
			s.err = errors.New("boom")
		}
	})
	var mu sync.Mutex
	var events []Event
	r.Progress = func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	rep, err := r.Run(context.Background(), Apply, nil)
	if err == nil || !strings.Contains(err.Error(), "stage provider: boom") {
		t.Fatalf("err %v, want stage provider: boom", err)
	}
	got := ran(j.snapshot(), Apply)
	slices.Sort(got)
	if want := []string{stage.Issuer, stage.Keys, stage.Provider, stage.Webhook}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v (apiserver, bindings and verify need the provider)", got, want)
	}
	byName := map[string]StageResult{}
	for _, s := range rep.Stages {
		byName[s.Name] = s
	}
	if len(byName[stage.Webhook].Changes) != 1 || len(byName[stage.Issuer].Changes) != 1 {
		t.Errorf("report lost what the other branches changed: %+v", rep.Stages)
	}
	if !strings.Contains(byName[stage.Bindings].Skipped, "stage provider did not succeed") {
		t.Errorf("bindings: %+v", byName[stage.Bindings])
	}
	if byName[stage.Provider].Error != "boom" || !rep.Changed {
		t.Errorf("provider: %+v, changed %v", byName[stage.Provider], rep.Changed)
	}
	if len(events) == 0 {
		t.Error("no progress events")
	}
}

func TestOnlySkipAndIfChanged(t *testing.T) {
	cases := []struct {
		name    string
		mode    Mode
		only    []string
		skip    map[string]string
		noDelta bool
		force   bool
		want    []string
		skipped map[string]string
	}{
		{name: "only", mode: Plan, only: []string{"provider", "keys"}, want: []string{"keys", "provider"}},
		{name: "skip", mode: Apply, only: []string{"keys", "webhook"}, skip: map[string]string{"webhook": "no cluster"},
			want: []string{"keys"}, skipped: map[string]string{"webhook": "no cluster"}},
		{name: "a skipped stage does not stop dependants", mode: Apply, only: []string{"webhook", "bindings"},
			skip: map[string]string{"webhook": "no cluster"}, want: []string{"bindings"}},
		{name: "verify runs after a change", mode: Apply, want: stage.Order},
		{name: "verify skipped when nothing changed", mode: Apply, noDelta: true, want: stage.Order[:len(stage.Order)-1],
			skipped: map[string]string{"verify": "nothing changed (--verify runs it anyway)"}},
		{name: "verify forced", mode: Apply, noDelta: true, force: true, want: stage.Order},
		{name: "plan always runs verify", mode: Plan, noDelta: true, want: stage.Order},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			r := newRunner(j, func(s *fakeStage) { s.noDelta = tc.noDelta })
			r.Skip, r.Force, r.IfChanged = tc.skip, tc.force, []string{stage.Verify}
			rep, err := r.Run(context.Background(), tc.mode, tc.only)
			if err != nil {
				t.Fatal(err)
			}
			got := ran(j.snapshot(), tc.mode)
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("ran %v, want %v", got, want)
			}
			for n, reason := range tc.skipped {
				if !slices.ContainsFunc(rep.Stages, func(s StageResult) bool { return s.Name == n && s.Skipped == reason }) {
					t.Errorf("report lacks %s skipped with %q: %+v", n, reason, rep.Stages)
				}
			}
		})
	}
}

func TestCancelledRunStartsNothingMore(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	r := newRunner(j, func(s *fakeStage) {
		if s.name == stage.Keys {
			s.wait = func(context.Context) error { cancel(); return context.Canceled }
		}
	})
	_, err := r.Run(ctx, Apply, []string{"keys", "issuer", "provider"})
	if err == nil || !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if got := ran(j.snapshot(), Apply); !slices.Equal(got, []string{"keys"}) {
		t.Errorf("ran %v after cancel, want only keys", got)
	}
}

func TestCycleIsRefused(t *testing.T) {
	j := &journal{}
	r := newRunner(j, nil)
	r.Needs = map[string][]string{stage.Keys: {stage.Issuer}, stage.Issuer: {stage.Keys}}
	if _, err := r.Run(context.Background(), Apply, []string{"keys", "issuer"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("err %v, want a cycle", err)
	}
	if len(j.snapshot()) != 0 {
		t.Error("a stage ran in a cyclic graph")
	}
}

func TestParseOnly(t *testing.T) {
	got, err := ParseOnly([]string{"keys,issuer", " provider "})
	if err != nil || !slices.Equal(got, []string{"keys", "issuer", "provider"}) {
		t.Errorf("ParseOnly = %v, %v", got, err)
	}
	if _, err := ParseOnly([]string{"keys,bogus"}); err == nil || !strings.Contains(err.Error(), `stage "bogus": unknown, must be one of keys, issuer`) {
		t.Errorf("ParseOnly(bogus) err = %v", err)
	}
}

// dependsOn reports whether stage a (transitively) needs b in graph.
func dependsOn(graph map[string][]string, a, b string) bool {
	for _, d := range graph[a] {
		if d == b || dependsOn(graph, d, b) {
			return true
		}
	}
	return false
}

// preparingStage is a fakeStage with a Prepare step, as the verify stage has.
type preparingStage struct {
	fakeStage
}

func (p preparingStage) Prepare(ctx context.Context) ([]stage.Change, error) {
	return p.run(ctx, "prepare")
}

func TestPrepareRunsBeforeTheRestart(t *testing.T) {
	cases := []struct {
		name        string
		noDelta     bool
		failing     string
		wantPrepare bool
		wantDelete  bool
	}{
		{name: "after a change: prepared before the apiserver", wantPrepare: true},
		{name: "nothing changed: no prepare", noDelta: true},
		{name: "apiserver fails: what prepare made is removed", failing: stage.APIServer, wantPrepare: true, wantDelete: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			r := newRunner(j, func(s *fakeStage) {
				s.noDelta = tc.noDelta
				if s.name == tc.failing {
					s.err = errors.New("boom")
				}
			})
			for i, s := range r.Stages {
				if s.Name() == stage.Verify {
					r.Stages[i] = preparingStage{s.(fakeStage)}
				}
			}
			r.IfChanged = []string{stage.Verify}
			rep, _ := r.Run(context.Background(), Apply, nil)
			events := j.snapshot()
			pos := map[string]int{}
			for i, e := range events {
				pos[e] = i
			}
			_, prepared := pos["start:prepare:verify"]
			if prepared != tc.wantPrepare {
				t.Fatalf("prepared %v, want %v: %v", prepared, tc.wantPrepare, events)
			}
			if prepared {
				for _, before := range []string{"end:apply:bindings", "end:apply:webhook", "end:apply:provider"} {
					if pos[before] > pos["start:prepare:verify"] {
						t.Errorf("prepare started before %s: %v", before, events)
					}
				}
				if pos["end:prepare:verify"] > pos["start:apply:apiserver"] {
					t.Errorf("the apiserver started before prepare ended: %v", events)
				}
			}
			_, deleted := pos["start:delete:verify"]
			if deleted != tc.wantDelete {
				t.Errorf("verify deleted %v, want %v: %v", deleted, tc.wantDelete, events)
			}
			for _, s := range rep.Stages {
				if s.Name == stage.Verify && tc.wantPrepare && len(s.Changes) == 0 {
					t.Errorf("verify's report lacks what prepare made: %+v", s)
				}
			}
		})
	}
}

// A stage's stage.Waiting reaches the progress as an event of that stage, between its start and its end.
func TestWaitingIsReported(t *testing.T) {
	j := &journal{}
	var events []Event
	r := &Runner{
		Stages: []stage.Stage{fakeStage{name: stage.Webhook, j: j, wait: func(ctx context.Context) error {
			stage.Waiting(ctx, "Deployment irsa/pod-identity-webhook to roll out")
			return nil
		}}},
		Progress: func(e Event) { events = append(events, e) },
	}
	if _, err := r.Run(context.Background(), Apply, nil); err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || events[1].Waiting != "Deployment irsa/pod-identity-webhook to roll out" || events[1].Stage != stage.Webhook ||
		events[1].Done || events[0].Done || !events[2].Done {
		t.Errorf("events = %+v, want start, waiting, end", events)
	}
}
