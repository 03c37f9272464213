package trust_test

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"sort"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

// BenchmarkVerifyCached measures a full verification (parse, key lookup, RS256, lifetime, audience, trust policy) with
// the issuer documents in the cache, and reports the median and 99th percentile per-operation latency.
func BenchmarkVerifyCached(b *testing.B) {
	f := newFixture(b)
	v := f.verifier(time.Hour)
	token := trusttest.Sign(b, trusttest.Key(b, 0), f.kid, f.claims)
	benchVerify(b, v, token, f.provider, f.policy)
}

// benchVerify verifies token b.N times after a warm-up that fills the cache, and reports p50 and p99.
func benchVerify(b *testing.B, v *trust.Verifier, token string, p trust.Provider, policy string) {
	ctx := context.Background()
	if res := v.Verify(ctx, token, p, policy); !res.OK() {
		b.Fatalf("warm-up: %v", res.Err())
	}
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res := v.Verify(ctx, token, p, policy)
		durations = append(durations, time.Since(start))
		if !res.OK() {
			b.Fatalf("verify: %v", res.Err())
		}
	}
	b.StopTimer()
	reportPercentiles(b, durations, time.Microsecond, "µs")
}

func BenchmarkVerifyCachedES256(b *testing.B) {
	f := newFixture(b)
	key := trusttest.ECKey(b, elliptic.P256())
	ecIssuer := f.srv.Publish(b, trusttest.Issuer{Name: "ec-bench", Keys: []crypto.PublicKey{&key.PublicKey}})
	prefix := trust.ConditionKeyPrefix(ecIssuer)
	p := f.provider
	p.URL, p.ARN = prefix, "arn:aws:iam::123456789012:oidc-provider/"+prefix
	policy := trustPolicy(p.ARN, prefix, "StringEquals", "system:serviceaccount:team-a:app")
	token := trusttest.SignWith(b, key, jose.ES256, trusttest.KeyID(b, &key.PublicKey), trusttest.With(f.claims, "iss", ecIssuer))
	benchVerify(b, f.verifier(time.Hour), token, p, policy)
}

func reportPercentiles(b *testing.B, d []time.Duration, unit time.Duration, name string) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))]) / float64(unit) }
	b.ReportMetric(at(0.50), "p50-"+name)
	b.ReportMetric(at(0.99), "p99-"+name)
}
