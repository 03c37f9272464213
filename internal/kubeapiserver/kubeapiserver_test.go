package kubeapiserver_test

import (
	"encoding/json"
	"io"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func TestStart(t *testing.T) {
	s := kubeapiserver.Start(t, kubeapiserver.Options{ExtraIssuers: []string{"https://old.test"}})
	ctx := t.Context()

	t.Run("discovery serves the issuer", func(t *testing.T) {
		hc, err := s.HTTPClient()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(s.URL + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var doc struct {
			Issuer string `json:"issuer"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("discovery %s: %v", b, err)
		}
		if doc.Issuer != kubeapiserver.DefaultIssuer {
			t.Errorf("issuer = %q, want %q", doc.Issuer, kubeapiserver.DefaultIssuer)
		}
	})

	t.Run("tokens default to the api audience", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tokens"}}
		if _, err := s.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "tokens"}}
		if _, err := s.Client.CoreV1().ServiceAccounts("tokens").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := s.Client.CoreV1().ServiceAccounts("tokens").CreateToken(ctx, "app", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Status.Token; got == "" {
			t.Fatal("empty token")
		}
		review, err := s.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token, Audiences: []string{config.DefaultAudience}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:tokens:app" {
			t.Errorf("token review = %+v", review.Status)
		}
	})

	t.Run("a user without RBAC is forbidden", func(t *testing.T) {
		c := s.UserClient(t, "nobody")
		_, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("list namespaces as nobody: err = %v, want forbidden", err)
		}
	})

	t.Run("kubeconfig file", func(t *testing.T) {
		if s.Kubeconfig == "" {
			t.Fatal("no kubeconfig")
		}
	})
}
