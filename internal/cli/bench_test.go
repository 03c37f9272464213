package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// BenchmarkNoopReapply measures a second `irsa apply` of the AWS stages (keys, issuer, provider, one binding) against
// moto: wall time per apply and AWS calls by kind. Target: 0 mutating calls, at most 13 reads, under 1 s.
func BenchmarkNoopReapply(b *testing.B) {
	e := newEnv(b)
	cfgFile := filepath.Join(b.TempDir(), "irsa.yaml")
	os.WriteFile(cfgFile, []byte("bindings:\n- namespace: default\n  serviceAccount: app\n  policyARNs: [arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess]\n"), 0o644)
	if code, out, errOut := e.run("apply", "-f", cfgFile); code != 0 {
		b.Fatalf("first apply: exit %d\n%s%s", code, out, errOut)
	}
	var reads, mutating int
	var byKind map[string]int
	for b.Loop() {
		if code, out, errOut := e.run("apply", "-f", cfgFile); code != 0 {
			b.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
		}
		reads, mutating = e.last.AWS.Calls.Reads(), len(e.last.AWS.Calls.Mutating())
		byKind = e.last.AWS.Calls.Snapshot()
	}
	b.ReportMetric(float64(reads), "reads/op")
	b.ReportMetric(float64(mutating), "mutating/op")
	var kinds []string
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	b.Logf("AWS calls per no-op apply: %s", strings.Join(kinds, " "))
}
