package cli

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/internal/faultproxy"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
)

// A kill point is one side of one mutating request's boundary: "before" stops the run and drops the request (it never
// reaches moto), "after" stops the run and lets the request through (it takes effect, the run never hears of it).
// The run is stopped by cancelling its context, which is what Ctrl-C and SIGTERM do; what a SIGKILL adds (no
// deferred cleanup: the lock stays) is covered by the lock's own tests (a dead holder's lock is taken over).
var killSides = []struct {
	name string
	arm  func(p *faultproxy.Proxy, m faultproxy.Match, f func())
}{
	{"before", (*faultproxy.Proxy).KillBefore},
	{"after", (*faultproxy.Proxy).OnRequest},
}

// countWrites returns a Match that never fires and counts the mutating requests it sees.
func countWrites(n *atomic.Int64) faultproxy.Match {
	return func(r faultproxy.Request) bool {
		if r.Mutating() {
			n.Add(1)
		}
		return false
	}
}

// killedRun runs irsa args (after e's flags) and stops it at the n-th mutating request it sends through p, on the
// given side. hit says whether that request came.
func killedRun(e *env, p *faultproxy.Proxy, arm func(*faultproxy.Proxy, faultproxy.Match, func()), n int, args ...string) (hit bool, code int, out string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fired atomic.Bool
	arm(p, faultproxy.NthMutating(n), func() { fired.Store(true); cancel() })
	var o, eo bytes.Buffer
	full := append(append(append([]string{}, args[:1]...), e.flags()...), args[1:]...)
	code = Main(ctx, full, &o, &eo)
	return fired.Load(), code, o.String() + eo.String()
}

// assertNothingLeft checks that nothing irsa made for e's cluster is left: bucket, provider, the binding's role.
func assertNothingLeft(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	c := clients(t)
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("bucket %s left (err %v)", e.bucket, err)
	}
	account, _ := c.AccountID(ctx)
	if _, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(provider.ARN("aws", account, e.issuer))}); !awsclient.IsNotFound(err) {
		t.Errorf("provider for %s left (err %v)", e.issuer, err)
	}
	if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("irsa-" + e.cluster + "-default-app")}); !awsclient.IsNotFound(err) {
		t.Errorf("role of default/app left (err %v)", err)
	}
}

// writesOf counts the mutating requests one clean run of args makes (after setup has run on the env).
func writesOf(t *testing.T, setup func(e *env, cfg string), args ...string) int {
	e := newEnv(t)
	p := withProxy(t, e)
	cfg := writeConfig(t)
	setup(e, cfg)
	var n atomic.Int64
	p.OnRequest(countWrites(&n), func() {})
	e.mustRun(append(args, "-f", cfg)...)
	return int(n.Load())
}

type killTally struct {
	mu               sync.Mutex
	tried, converged int
}

func (k *killTally) add(ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tried++
	if ok {
		k.converged++
	}
}

// Kill points of apply: a new cluster's apply (the lock, issuer, provider, one binding) stopped on either side of
// each of its mutating requests, then run again, converges to a clean apply's state (plan exits 0, the lock is gone),
// and teardown then leaves nothing.
func TestApplyKilledAtEveryRequestConverges(t *testing.T) {
	start := time.Now()
	writes := writesOf(t, func(*env, string) {}, "apply")
	var tally killTally
	t.Cleanup(func() {
		t.Logf("apply kill points tried %d, converged %d (%d writes x 2 sides) in %s", tally.tried, tally.converged, writes, time.Since(start).Round(time.Second))
	})
	for _, side := range killSides {
		for n := 1; n <= writes; n++ {
			t.Run(fmt.Sprintf("%s write %d", side.name, n), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				p := withProxy(t, e)
				cfg := writeConfig(t)
				ok := false
				defer func() { tally.add(ok) }()
				hit, code, out := killedRun(e, p, side.arm, n, "apply", "-f", cfg)
				if !hit || (code != ExitInterrupted && code != 0) {
					t.Fatalf("apply stopped %s write %d: hit %v, exit %d\n%s", side.name, n, hit, code, out)
				}
				e.mustRun("apply", "-f", cfg, "--lock-timeout", "0")
				if code, o, eo := e.run("plan", "-f", cfg); code != 0 {
					t.Fatalf("plan after the re-run: exit %d\n%s%s", code, o, eo)
				}
				lockGone(t, clients(t), e.bucket)
				e.mustRun("teardown", "--yes", "--aws-only", "-f", cfg, "--lock-timeout", "0")
				assertNothingLeft(t, e)
				ok = !t.Failed()
			})
		}
	}
}

// Kill points of teardown: a teardown of an applied cluster stopped on either side of each of its mutating requests,
// then run again, leaves nothing irsa created.
func TestTeardownKilledAtEveryRequestLeavesNothing(t *testing.T) {
	start := time.Now()
	applied := func(e *env, cfg string) { e.mustRun("apply", "-f", cfg) }
	writes := writesOf(t, applied, "teardown", "--yes", "--aws-only")
	var tally killTally
	t.Cleanup(func() {
		t.Logf("teardown kill points tried %d, converged %d (%d writes x 2 sides) in %s", tally.tried, tally.converged, writes, time.Since(start).Round(time.Second))
	})
	for _, side := range killSides {
		for n := 1; n <= writes; n++ {
			t.Run(fmt.Sprintf("%s write %d", side.name, n), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				p := withProxy(t, e)
				cfg := writeConfig(t)
				ok := false
				defer func() { tally.add(ok) }()
				applied(e, cfg)
				hit, code, out := killedRun(e, p, side.arm, n, "teardown", "--yes", "--aws-only", "-f", cfg)
				if !hit || (code != ExitInterrupted && code != 0) {
					t.Fatalf("teardown stopped %s write %d: hit %v, exit %d\n%s", side.name, n, hit, code, out)
				}
				e.mustRun("teardown", "--yes", "--aws-only", "-f", cfg, "--lock-timeout", "0")
				assertNothingLeft(t, e)
				ok = !t.Failed()
			})
		}
	}
}
