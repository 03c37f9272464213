package apiserver

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The kubelet's token manager (pkg/kubelet/token) refreshes a projected service account token once it is older than
// 80% of its requested lifetime or than 24h (a random jitter of up to 10s makes it earlier, never later), and the
// volume gets the new token at the pod's next sync (the kubelet's syncFrequency, 1m by default). The TokenRequest status reports the
// requested lifetime even when the apiserver extends the token (--service-account-extend-token-expiration), so
// these bounds hold for the default kube-api-access volumes too.
const (
	kubeletMaxTokenTTL     = 24 * time.Hour
	kubeletSyncFrequency   = time.Minute
	defaultProjectedExpiry = 3600 // seconds: the API default of serviceAccountToken.expirationSeconds
)

// TokenHolders counts the running pods that hold projected service account tokens.
type TokenHolders struct {
	// Pods is the number of running pods with at least one serviceAccountToken projection.
	Pods int
	// RefreshWithin bounds how long after a change of issuer the kubelet has replaced every such token: the
	// longest refresh interval among them.
	RefreshWithin time.Duration
}

// ProjectedTokenHolders lists the running pods of every namespace and counts those with projected tokens.
func ProjectedTokenHolders(ctx context.Context, client kubernetes.Interface) (TokenHolders, error) {
	var h TokenHolders
	list, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=" + string(corev1.PodRunning)})
	if err != nil {
		return h, fmt.Errorf("list running pods: %w", explain(err))
	}
	for _, p := range list.Items {
		holds := false
		for _, v := range p.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken == nil {
					continue
				}
				holds = true
				seconds := int64(defaultProjectedExpiry)
				if e := src.ServiceAccountToken.ExpirationSeconds; e != nil {
					seconds = *e
				}
				refresh := min(time.Duration(seconds)*time.Second*8/10, kubeletMaxTokenTTL) + kubeletSyncFrequency
				h.RefreshWithin = max(h.RefreshWithin, refresh)
			}
		}
		if holds {
			h.Pods++
		}
	}
	return h, nil
}
