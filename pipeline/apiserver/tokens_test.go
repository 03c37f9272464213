package apiserver

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
)

// TestPatchedFlagsKeepOldTokensValid starts a real kube-apiserver with the service account flags Patch writes into
// kubeadm's manifest and shows the claims the patch rests on: a token issued before the patch (kubeadm's issuer,
// the default audience, which was that issuer) still authenticates; a new token carries the irsa issuer. The
// runbook's flags (issuer replaced, --api-audiences=sts.amazonaws.com) reject the old token.
func TestPatchedFlagsKeepOldTokensValid(t *testing.T) {
	t.Parallel()
	patched := readFile(t, "manifest/testdata/manifest/kubeadm-first-patch/expected.yaml")
	issuers, err := manifest.Issuers(patched)
	if err != nil {
		t.Fatal(err)
	}
	audiences, err := manifest.Audiences(patched)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(issuers, append([]string{patchedOptions.Issuer}, patchedOptions.ExtraIssuers...)) || !slices.Equal(audiences, patchedOptions.APIAudiences) {
		t.Fatalf("golden patched flags: issuers %q audiences %q; the shared test apiserver runs with %+v", issuers, audiences, patchedOptions)
	}

	t.Run("patched flags", func(t *testing.T) {
		t.Parallel()
		srv := patchedServer(t)
		old := oldToken(t, srv)
		review, err := srv.Client.AuthenticationV1().TokenReviews().Create(t.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: old}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:default:app" {
			t.Errorf("token issued before the patch: %+v; want it still authenticated", review.Status)
		}

		tr, err := srv.Client.CoreV1().ServiceAccounts("default").CreateToken(t.Context(), "app", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		claims := unverifiedClaims(t, tr.Status.Token)
		if claims.Issuer != testIssuer {
			t.Errorf("new token iss %q, want %q", claims.Issuer, testIssuer)
		}
		if !slices.Contains([]string(claims.Audience), kubeadmIssuer) {
			t.Errorf("new default token aud %q lacks %q: in-cluster clients keep the audience they had", claims.Audience, kubeadmIssuer)
		}
	})

	// Either half alone breaks old tokens: the runbook's flags (issuer replaced), and keeping the issuer while
	// setting --api-audiences to the new audience only.
	for name, opts := range map[string]kubeapiserver.Options{
		"runbook flags":               {Issuer: testIssuer, APIAudiences: []string{"sts.amazonaws.com"}},
		"old issuer without audience": {Issuer: testIssuer, ExtraIssuers: []string{kubeadmIssuer}, APIAudiences: []string{"sts.amazonaws.com"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := kubeapiserver.Start(t, opts)
			review, err := srv.Client.AuthenticationV1().TokenReviews().Create(t.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: oldToken(t, srv)}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if review.Status.Authenticated {
				t.Errorf("%s accepted a token issued before the change; this test no longer shows why irsa keeps both", name)
			}
		})
	}
}

// oldToken is a service account token as kube-apiserver issued it with kubeadm's flags before the patch: iss and
// aud are kubeadm's issuer, signed with the cluster's key.
func oldToken(t *testing.T, srv *kubeapiserver.Server) string {
	t.Helper()
	sa, err := srv.Client.CoreV1().ServiceAccounts("default").Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(srv.ServiceAccountSigningKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, _, kid, err := node.ParseSigningKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	private := map[string]any{"kubernetes.io": map[string]any{
		"namespace":      "default",
		"serviceaccount": map[string]any{"name": "app", "uid": string(sa.UID)},
	}}
	token, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer:    kubeadmIssuer,
		Subject:   "system:serviceaccount:default:app",
		Audience:  jwt.Audience{kubeadmIssuer},
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Hour)),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Hour)),
		Expiry:    jwt.NewNumericDate(now.Add(time.Hour)),
	}).Claims(private).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func unverifiedClaims(t *testing.T, token string) jwt.Claims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
