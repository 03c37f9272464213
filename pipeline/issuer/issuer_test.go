package issuer

import "testing"

func TestObjectKeys(t *testing.T) {
	cases := []struct{ issuer, bucket, disc, jwks string }{
		{"https://b.s3.eu-west-1.amazonaws.com", "b", ".well-known/openid-configuration", "keys.json"},
		{"https://b.s3.eu-west-1.amazonaws.com/prod", "b", "prod/.well-known/openid-configuration", "prod/keys.json"},
		{"https://127.0.0.1:4566/b", "b", ".well-known/openid-configuration", "keys.json"},
		{"https://127.0.0.1:4566/b/prod", "b", "prod/.well-known/openid-configuration", "prod/keys.json"},
		{"https://oidc.example.com/clusters/prod", "b", "clusters/prod/.well-known/openid-configuration", "clusters/prod/keys.json"},
	}
	for _, tc := range cases {
		d, j := ObjectKeys(tc.issuer, tc.bucket)
		if d != tc.disc || j != tc.jwks {
			t.Errorf("ObjectKeys(%q, %q) = %q, %q; want %q, %q", tc.issuer, tc.bucket, d, j, tc.disc, tc.jwks)
		}
	}
}
