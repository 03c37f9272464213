package rotation

import (
	"strings"
	"testing"
	"time"
)

func TestLifetimeAndInUse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		settings      TokenSettings
		token         ProjectedToken
		life, inUse   time.Duration
		reasonMention string
	}{
		{"default projection", TokenSettings{}, ProjectedToken{}, time.Hour, 48*time.Minute + KubeletJitter, ""},
		{"webhook's day-long STS token", TokenSettings{}, ProjectedToken{Audience: "sts.amazonaws.com", ExpirationSeconds: 86400}, 24 * time.Hour, 19*time.Hour + 12*time.Minute + KubeletJitter, ""},
		{"kube-api-access extended to a year", TokenSettings{ExtendTokenExpiration: true}, ProjectedToken{ExpirationSeconds: 3607}, ExtendedExpiration, 24*time.Hour + KubeletJitter, ""},
		{"extension capped by max", TokenSettings{ExtendTokenExpiration: true, MaxTokenExpiration: 2 * time.Hour}, ProjectedToken{ExpirationSeconds: 3607}, 2 * time.Hour, 96*time.Minute + KubeletJitter, ""},
		{"no extension when disabled", TokenSettings{}, ProjectedToken{ExpirationSeconds: 3607}, 3607 * time.Second, time.Duration(float64(3607*time.Second)*0.8) + KubeletJitter, ""},
		{"no extension for another audience", TokenSettings{ExtendTokenExpiration: true}, ProjectedToken{Audience: "sts.amazonaws.com", ExpirationSeconds: 3607}, 3607 * time.Second, time.Duration(float64(3607*time.Second)*0.8) + KubeletJitter, ""},
		{"max caps a long projection", TokenSettings{MaxTokenExpiration: time.Hour}, ProjectedToken{ExpirationSeconds: 172800}, time.Hour, 48*time.Minute + KubeletJitter, ""},
		{"ten minutes", TokenSettings{}, ProjectedToken{ExpirationSeconds: 600}, 10 * time.Minute, 8*time.Minute + KubeletJitter, ""},
	}
	for _, c := range cases {
		if got := c.settings.Lifetime(c.token); got != c.life {
			t.Errorf("%s: lifetime %s, want %s", c.name, got, c.life)
		}
		if got := c.settings.InUse(c.token); got != c.inUse {
			t.Errorf("%s: in use %s, want %s", c.name, got, c.inUse)
		}
	}
}

func TestComputeRetire(t *testing.T) {
	t.Parallel()
	promoted := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	s := TokenSettings{ExtendTokenExpiration: true, Projected: []ProjectedToken{
		{Pod: "default/app", Audience: "sts.amazonaws.com", ExpirationSeconds: 3600},
		{Pod: "default/app", ExpirationSeconds: 3607},
		{Pod: "default/short", ExpirationSeconds: 600},
	}}
	rt := ComputeRetire(promoted, s)
	if want := promoted.Add(24*time.Hour + KubeletJitter); !rt.SafeAt.Equal(want) {
		t.Errorf("SafeAt %s, want %s", rt.SafeAt, want)
	}
	if rt.Longest == nil || rt.Longest.ExpirationSeconds != 3607 {
		t.Errorf("longest %+v, want the extended kube-api-access token", rt.Longest)
	}
	for _, want := range []string{"2026-11-30T06:00:00Z", "pod default/app", "extended by --service-account-extend-token-expiration", "not bounded"} {
		if !strings.Contains(rt.Reason, want) {
			t.Errorf("reason lacks %q: %s", want, rt.Reason)
		}
	}

	none := ComputeRetire(promoted, TokenSettings{MaxTokenExpiration: 2 * time.Hour})
	if !none.SafeAt.Equal(promoted) || none.Longest != nil || !strings.Contains(none.Reason, "at most 2h0m0s") {
		t.Errorf("no pods: %+v", none)
	}
}
