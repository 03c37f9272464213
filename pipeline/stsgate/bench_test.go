package stsgate_test

import (
	"context"
	"crypto"
	"sort"
	"testing"
	"time"

	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

// BenchmarkGateOverhead calls AssumeRoleWithWebIdentity with a valid token alternately on moto directly and through
// the gate, and reports the median of each and the median of the per-pair difference (the gate's overhead).
// "iam-cache" is the default configuration; "no-iam-cache" reads the provider and the role from moto on every call.
func BenchmarkGateOverhead(b *testing.B) {
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"iam-cache", 0}, {"no-iam-cache", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, stsgate.Options{IAMCacheTTL: bc.ttl})
			key := trusttest.Key(b, 0)
			good := e.issuers.Publish(b, trusttest.Issuer{Name: "good", Keys: []crypto.PublicKey{&key.PublicKey}})
			roleARN := e.addRole(b, "irsa-bench", allowFor(e.addProvider(b, good), good, "StringEquals", "system:serviceaccount:team-a:app"))
			token := trusttest.Sign(b, key, trusttest.KeyID(b, &key.PublicKey),
				trusttest.ServiceAccountClaims(good, "team-a", "app", audience, time.Now().Add(-time.Minute)))
			ctx := context.Background()
			for i := 0; i < 3; i++ { // warm connections and caches
				if _, err := e.assume(ctx, e.sts, roleARN, token); err != nil {
					b.Fatalf("through the gate: %v", err)
				}
				if _, err := e.assume(ctx, e.directSTS, roleARN, token); err != nil {
					b.Fatalf("direct: %v", err)
				}
			}
			direct := make([]time.Duration, 0, b.N)
			gated := make([]time.Duration, 0, b.N)
			overhead := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := e.assume(ctx, e.directSTS, roleARN, token); err != nil {
					b.Fatalf("direct: %v", err)
				}
				d := time.Since(start)
				start = time.Now()
				if _, err := e.assume(ctx, e.sts, roleARN, token); err != nil {
					b.Fatalf("through the gate: %v", err)
				}
				g := time.Since(start)
				direct, gated, overhead = append(direct, d), append(gated, g), append(overhead, g-d)
			}
			b.StopTimer()
			b.ReportMetric(median(direct), "p50-direct-ms")
			b.ReportMetric(median(gated), "p50-gate-ms")
			b.ReportMetric(median(overhead), "p50-overhead-ms")
		})
	}
}

func median(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2]) / float64(time.Millisecond)
}
