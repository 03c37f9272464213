package webhook

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var names = ServingDNSNames("pod-identity-webhook", "irsa-system")

// verifies checks that m's serving certificate is trusted by bundle at now for every name.
func verifies(t *testing.T, serving []byte, bundle []byte, now time.Time) error {
	t.Helper()
	certs, err := caBundleCerts(bundle)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	leaf, err := parseCert(serving)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, CurrentTime: now}); err != nil {
			return err
		}
	}
	return nil
}

func mustEnsure(t *testing.T, cur TLSMaterial, dns []string, now time.Time) (TLSMaterial, []string) {
	t.Helper()
	m, reasons, err := EnsureTLS(cur, dns, now, DefaultTLSPolicy)
	if err != nil {
		t.Fatal(err)
	}
	return m, reasons
}

func TestEnsureTLS(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

	fresh, reasons := mustEnsure(t, TLSMaterial{}, names, t0)
	if len(reasons) != 2 || fresh.PreviousCACert != nil {
		t.Fatalf("fresh install: reasons %q, previous CA %q", reasons, fresh.PreviousCACert)
	}
	if err := verifies(t, fresh.ServingCert, fresh.CABundle(), t0); err != nil {
		t.Fatalf("fresh install: serving certificate not trusted by caBundle: %v", err)
	}

	t.Run("re-apply without change", func(t *testing.T) {
		t.Parallel()
		again, reasons := mustEnsure(t, fresh, names, t0.Add(24*time.Hour))
		if len(reasons) != 0 {
			t.Errorf("reasons = %q, want none", reasons)
		}
		if !bytes.Equal(again.ServingCert, fresh.ServingCert) || !bytes.Equal(again.CACert, fresh.CACert) || !bytes.Equal(again.CABundle(), fresh.CABundle()) {
			t.Error("material changed on re-apply")
		}
	})

	t.Run("renewal under 30 days left", func(t *testing.T) {
		t.Parallel()
		leaf, _ := parseCert(fresh.ServingCert)
		// 31 days before expiry: kept. 29 days before: renewed under the same CA.
		kept, reasons := mustEnsure(t, fresh, names, leaf.NotAfter.Add(-31*24*time.Hour))
		if len(reasons) != 0 || !bytes.Equal(kept.ServingCert, fresh.ServingCert) {
			t.Errorf("31 days left: reasons %q, want none", reasons)
		}
		at := leaf.NotAfter.Add(-29 * 24 * time.Hour)
		renewed, reasons := mustEnsure(t, fresh, names, at)
		if len(reasons) != 1 || !strings.HasPrefix(reasons[0], "renew serving certificate") {
			t.Errorf("29 days left: reasons %q, want one renewal", reasons)
		}
		if bytes.Equal(renewed.ServingCert, fresh.ServingCert) || !bytes.Equal(renewed.CACert, fresh.CACert) {
			t.Error("want a new serving certificate under the same CA")
		}
		if err := verifies(t, renewed.ServingCert, renewed.CABundle(), at); err != nil {
			t.Errorf("renewed certificate not trusted: %v", err)
		}
		n, _ := parseCert(renewed.ServingCert)
		if !n.NotAfter.After(at.Add(300 * 24 * time.Hour)) {
			t.Errorf("renewed certificate expires %s, too soon", n.NotAfter)
		}
	})

	t.Run("names changed", func(t *testing.T) {
		t.Parallel()
		other := ServingDNSNames("webhook", "other")
		m, reasons := mustEnsure(t, fresh, other, t0)
		if len(reasons) != 1 || !strings.Contains(reasons[0], "names") {
			t.Errorf("reasons = %q", reasons)
		}
		leaf, _ := parseCert(m.ServingCert)
		if !equalSet(leaf.DNSNames, other) {
			t.Errorf("DNS names %v, want %v", leaf.DNSNames, other)
		}
	})

	t.Run("CA rotation keeps both CAs until the old one expires", func(t *testing.T) {
		t.Parallel()
		oldCA, _ := parseCert(fresh.CACert)
		at := oldCA.NotAfter.Add(-300 * 24 * time.Hour) // inside the CA's last year
		// Serving certificates are renewed yearly: start from one issued before the CA entered its last year.
		current, _ := mustEnsure(t, TLSMaterial{CACert: fresh.CACert, CAKey: fresh.CAKey}, names, oldCA.NotAfter.Add(-400*24*time.Hour))

		rotated, reasons := mustEnsure(t, current, names, at)
		if len(reasons) != 2 || !strings.HasPrefix(reasons[0], "rotate CA") {
			t.Fatalf("reasons = %q, want CA rotation and reissue", reasons)
		}
		if bytes.Equal(rotated.CACert, current.CACert) || !bytes.Equal(rotated.PreviousCACert, current.CACert) {
			t.Fatal("want a new CA with the old one kept as previous")
		}
		bundle := rotated.CABundle()
		if certs, _ := caBundleCerts(bundle); len(certs) != 2 {
			t.Fatalf("caBundle has %d certificates, want 2", len(certs))
		}
		// During the rollout either serving certificate must be trusted.
		if err := verifies(t, current.ServingCert, bundle, at); err != nil {
			t.Errorf("old serving certificate not trusted by the overlap bundle: %v", err)
		}
		if err := verifies(t, rotated.ServingCert, bundle, at); err != nil {
			t.Errorf("new serving certificate not trusted by the overlap bundle: %v", err)
		}
		if err := verifies(t, rotated.ServingCert, rotated.CACert, at); err != nil {
			t.Errorf("new serving certificate not signed by the new CA: %v", err)
		}

		stable, reasons := mustEnsure(t, rotated, names, at.Add(time.Hour))
		if len(reasons) != 0 || !bytes.Equal(stable.CABundle(), bundle) {
			t.Errorf("re-apply during overlap: reasons %q", reasons)
		}

		after := oldCA.NotAfter.Add(time.Hour)
		dropped, reasons := mustEnsure(t, rotated, names, after)
		if len(reasons) != 1 || !strings.Contains(reasons[0], "previous CA") || dropped.PreviousCACert != nil {
			t.Errorf("after the old CA expired: reasons %q", reasons)
		}
		if !bytes.Equal(dropped.CABundle(), rotated.CACert) || !bytes.Equal(dropped.ServingCert, rotated.ServingCert) {
			t.Error("after the old CA expired: want only the new CA in caBundle and the same serving certificate")
		}
	})

	t.Run("serving certificate never outlives its CA", func(t *testing.T) {
		t.Parallel()
		p := DefaultTLSPolicy
		p.CARenewBefore = 0
		ca, _ := parseCert(fresh.CACert)
		at := ca.NotAfter.Add(-100 * 24 * time.Hour)
		m, _, err := EnsureTLS(TLSMaterial{CACert: fresh.CACert, CAKey: fresh.CAKey}, names, at, p)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := parseCert(m.ServingCert)
		if leaf.NotAfter.After(ca.NotAfter) {
			t.Errorf("serving certificate expires %s after its CA %s", leaf.NotAfter, ca.NotAfter)
		}
	})

	t.Run("unusable stored material is replaced", func(t *testing.T) {
		t.Parallel()
		broken := fresh
		broken.ServingKey = fresh.CAKey
		m, reasons := mustEnsure(t, broken, names, t0)
		if len(reasons) != 1 || !strings.Contains(reasons[0], "does not match") {
			t.Errorf("reasons = %q", reasons)
		}
		if err := verifies(t, m.ServingCert, m.CABundle(), t0); err != nil {
			t.Error(err)
		}
		_, reasons = mustEnsure(t, TLSMaterial{CACert: []byte("garbage"), CAKey: fresh.CAKey}, names, t0)
		if len(reasons) != 2 || !strings.HasPrefix(reasons[0], "replace unusable CA") {
			t.Errorf("garbage CA: reasons %q", reasons)
		}
	})
}

func equalSet(a, b []string) bool {
	sa, sb := sorted(a), sorted(b)
	if len(sa) != len(sb) {
		return false
	}
	for i := range sa {
		if sa[i] != sb[i] {
			return false
		}
	}
	return true
}
