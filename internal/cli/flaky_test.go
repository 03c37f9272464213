package cli

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Throttling and lost responses on 30 % of all requests (half each, through the fault proxy in front of moto): apply
// and teardown still succeed, the SDK retrying with backoff and irsa adopting what a retried create finds made; the
// applied state is a clean apply's (plan exits 0) and teardown leaves nothing. Three runs with different seeds, timed
// against a clean run through the same proxy.
func TestApplyAndTeardownUnderThrottlingAndLostResponses(t *testing.T) {
	const rate, runs = 0.3, 3
	clean := func() time.Duration {
		e := newEnv(t)
		withProxy(t, e)
		cfg := writeConfig(t)
		start := time.Now()
		e.mustRun("apply", "-f", cfg)
		e.mustRun("teardown", "--yes", "--aws-only", "-f", cfg)
		return time.Since(start)
	}()
	var mu sync.Mutex
	succeeded := 0
	var times []time.Duration
	t.Cleanup(func() {
		t.Logf("fault runs (%.0f%% throttled or lost, apply + teardown): %d tried, %d succeeded; clean %s, faulted %v",
			rate*100, runs, succeeded, clean.Round(10*time.Millisecond), times)
	})
	for i := range runs {
		t.Run(fmt.Sprintf("seed %d", i+1), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := withProxy(t, e)
			cfg := writeConfig(t)
			start := time.Now()
			p.Flaky(rate, uint64(i+1))
			e.mustRun("apply", "-f", cfg)
			applied := p.Counts()
			p.Flaky(0, 0)
			if code, o, eo := e.run("plan", "-f", cfg); code != 0 {
				t.Fatalf("plan after an apply under faults: exit %d\n%s%s", code, o, eo)
			}
			lockGone(t, clients(t), e.bucket)
			p.Flaky(rate, uint64(100+i))
			e.mustRun("teardown", "--yes", "--aws-only", "-f", cfg)
			p.Flaky(0, 0)
			assertNothingLeft(t, e)
			all := p.Counts()
			took := time.Since(start)
			t.Logf("apply: %+v; apply and teardown: %+v; %s", applied, all, took.Round(10*time.Millisecond))
			if all.Throttled == 0 || all.Dropped == 0 {
				t.Errorf("the proxy throttled %d and dropped %d: the faults never happened", all.Throttled, all.Dropped)
			}
			if !t.Failed() {
				mu.Lock()
				succeeded++
				times = append(times, took.Round(10*time.Millisecond))
				mu.Unlock()
			}
		})
	}
}
