package trust

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// The seed corpora are in testdata/fuzz/<target> (go test reads them on every run, fuzzing or not); `make fuzz-short`
// fuzzes each target for a few seconds.

// FuzzParseToken feeds arbitrary text to the token parser, the claims peeker and the key set parser: none may panic,
// and whatever the parser accepts must be a token STS could accept (an allowed algorithm, an issuer, integer dates).
func FuzzParseToken(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOiJodHRwczovL2kiLCJleHAiOjF9.c2ln")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		jws, claims, err := parseToken(token)
		if err == nil {
			if jws == nil || claims == nil || claims.Issuer == "" {
				t.Fatalf("accepted %q without a signature or an issuer: %+v", token, claims)
			}
			if !slices.Contains(Algorithms, jose.SignatureAlgorithm(claims.Algorithm)) {
				t.Fatalf("accepted %q with alg %q", token, claims.Algorithm)
			}
		}
		_, _ = PeekClaims(token)
		_, _, _ = parseKeySet([]byte(token))
		if _, after, ok := strings.Cut(token, "."); ok {
			_, _ = parseClaims([]byte(after))
		}
	})
}

// FuzzNumericDate checks the NumericDate rule: only JSON integers are read, and they read back as themselves.
func FuzzNumericDate(f *testing.F) {
	for _, s := range []string{"1700000000", "-1", "1.5", "1e9", `"1"`, "null", "", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tm, err := numericDate(json.RawMessage(raw))
		if err != nil || raw == "" || raw == "null" {
			return
		}
		if strings.ContainsAny(raw, ".eE\"+ ") {
			t.Fatalf("accepted %q as an integer", raw)
		}
		if got := tm.Unix(); strings.TrimLeft(strings.TrimPrefix(raw, "-"), "0") != strings.TrimLeft(strings.TrimPrefix(jsonInt(got), "-"), "0") {
			t.Fatalf("%q read as %d", raw, got)
		}
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// FuzzEvaluateTrustPolicy evaluates arbitrary policies against arbitrary subjects. It must not panic, must decide the
// same way twice, must never both allow and explicitly deny, and a policy that parses must be denied explicitly once
// a Deny-everything statement is added to it: an explicit Deny always wins.
func FuzzEvaluateTrustPolicy(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "policy", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var c struct {
			Policy  json.RawMessage     `json:"policy"`
			Context map[string][]string `json:"context"`
		}
		if json.Unmarshal(data, &c) != nil {
			continue
		}
		sub := ""
		for k, v := range c.Context {
			if strings.HasSuffix(k, ":sub") && len(v) > 0 {
				sub = v[0]
			}
		}
		f.Add(string(c.Policy), sub, "sts.amazonaws.com")
	}
	const prefix = "oidc.example.com/id/1"
	const principal = "arn:aws:iam::123456789012:oidc-provider/" + prefix
	f.Fuzz(func(t *testing.T, doc, sub, aud string) {
		req := Request{Principal: principal, Action: ActionAssumeRoleWithWebIdentity,
			Context: map[string][]string{prefix + ":sub": {sub}, prefix + ":aud": {aud}}}
		p, err := ParsePolicy(doc)
		if err != nil {
			return
		}
		d1, d2 := p.Evaluate(req), p.Evaluate(req)
		if d1 != d2 {
			t.Fatalf("two evaluations differ: %+v, %+v", d1, d2)
		}
		if d1.Allowed && d1.ExplicitDeny {
			t.Fatalf("allowed and explicitly denied: %+v", d1)
		}
		if d1.Allowed && d1.Statement == "" {
			t.Fatalf("allowed without a deciding statement: %+v", d1)
		}
		if d1.Reason == "" {
			t.Fatalf("decision without a reason: %+v", d1)
		}
		denyAll := *p
		denyAll.Statements = append(slices.Clone(p.Statements), Statement{Effect: "Deny",
			Principal: principalSet{present: true, wildcard: true}, Action: []string{"*"}, index: len(p.Statements)})
		if d := denyAll.Evaluate(req); d.Allowed || !d.ExplicitDeny {
			t.Fatalf("a Deny * statement did not win: %+v", d)
		}
	})
}

// FuzzGlob checks StringLike's matcher: a pattern without wildcards matches exactly itself, "*" matches anything.
func FuzzGlob(f *testing.F) {
	f.Add("system:serviceaccount:*:app", "system:serviceaccount:team-a:app")
	f.Add("a?c", "abc")
	f.Fuzz(func(t *testing.T, pattern, value string) {
		got := Glob(pattern, value, false)
		if !strings.ContainsAny(pattern, "*?") && got != (pattern == value) {
			t.Fatalf("Glob(%q, %q) = %v without wildcards", pattern, value, got)
		}
		if !Glob("*", value, false) {
			t.Fatalf("Glob(*, %q) = false", value)
		}
		if !Glob(value, value, false) && !strings.ContainsAny(value, "*?") {
			t.Fatalf("Glob(%q, itself) = false", value)
		}
	})
}
