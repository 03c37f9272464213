package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

type fakeStage struct {
	name string
	log  *[]string
	err  error
}

func (f fakeStage) Name() string { return f.name }
func (f fakeStage) run(mode string) ([]stage.Change, error) {
	*f.log = append(*f.log, mode+":"+f.name)
	if f.err != nil {
		return nil, f.err
	}
	return []stage.Change{{Action: stage.Create, Kind: "thing", Name: f.name}}, nil
}
func (f fakeStage) Plan(context.Context) ([]stage.Change, error)   { return f.run("plan") }
func (f fakeStage) Apply(context.Context) ([]stage.Change, error)  { return f.run("apply") }
func (f fakeStage) Delete(context.Context) ([]stage.Change, error) { return f.run("delete") }

func newRunner(log *[]string, failing string) *Runner {
	var stages []stage.Stage
	for _, n := range stage.Order {
		s := fakeStage{name: n, log: log}
		if n == failing {
			s.err = errors.New("boom")
		}
		stages = append(stages, s)
	}
	return &Runner{Stages: stages}
}

func TestRunOrder(t *testing.T) {
	cases := []struct {
		name    string
		mode    Mode
		only    []string
		skip    map[string]string
		failing string
		want    []string
		wantErr string
	}{
		{name: "apply in order", mode: Apply, want: prefixed("apply:", stage.Order)},
		{name: "delete reversed", mode: Delete, want: prefixed("delete:", reversed(stage.Order))},
		{name: "only", mode: Plan, only: []string{"provider", "keys"}, want: []string{"plan:keys", "plan:provider"}},
		{name: "skip", mode: Apply, only: []string{"keys", "webhook"}, skip: map[string]string{"webhook": "no cluster"}, want: []string{"apply:keys"}},
		{name: "stops at the first error", mode: Apply, failing: "provider", want: []string{"apply:keys", "apply:issuer", "apply:provider"}, wantErr: "stage provider: boom"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			r := newRunner(&log, tc.failing)
			r.Skip = tc.skip
			var events []Event
			r.Progress = func(e Event) { events = append(events, e) }
			rep, err := r.Run(context.Background(), tc.mode, tc.only)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if !slices.Equal(log, tc.want) {
				t.Errorf("ran %v, want %v", log, tc.want)
			}
			if rep.Changed != (len(tc.want) > 0 && tc.failing == "") && tc.wantErr == "" {
				t.Errorf("Changed = %v", rep.Changed)
			}
			for n, reason := range tc.skip {
				found := false
				for _, s := range rep.Stages {
					if s.Name == n && s.Skipped == reason {
						found = true
					}
				}
				if !found {
					t.Errorf("report lacks skipped stage %s: %+v", n, rep.Stages)
				}
			}
		})
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

func prefixed(p string, names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, p+n)
	}
	return out
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}
