package bindings

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Injected reports whether a pod created now with the ServiceAccount ns/sa would get the web identity for roleARN:
// a server-side dry run through the admission chain, so nothing is created. The webhook fails open (a pod created
// while it is unreachable simply runs without credentials), so this is the only way to know it is in the path.
// The string says what was seen.
func Injected(ctx context.Context, client kubernetes.Interface, ns, sa, roleARN string) (bool, string, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "irsa-injection-check-", Namespace: ns},
		Spec: corev1.PodSpec{ServiceAccountName: sa, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "check", Image: "irsa.invalid/dry-run"}}},
	}
	out, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return false, "", fmt.Errorf("dry-run a pod with service account %s/%s: %w", ns, sa, err)
	}
	var arn, file string
	for _, e := range out.Spec.Containers[0].Env {
		switch e.Name {
		case "AWS_ROLE_ARN":
			arn = e.Value
		case "AWS_WEB_IDENTITY_TOKEN_FILE":
			file = e.Value
		}
	}
	if arn == roleARN && file != "" {
		return true, "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE injected", nil
	}
	return false, fmt.Sprintf("AWS_ROLE_ARN=%q AWS_WEB_IDENTITY_TOKEN_FILE=%q", arn, file), nil
}

// WaitInjected polls Injected until pods of ns/sa get the web identity. Right after the webhook's Deployment becomes
// available, the apiserver may not reach it yet (endpoints and service routing lag behind pod readiness).
func WaitInjected(ctx context.Context, client kubernetes.Interface, ns, sa, roleARN string, timeout time.Duration) error {
	stage.Waiting(ctx, fmt.Sprintf("the pod identity webhook to give new pods of %s/%s the web identity (up to %s)", ns, sa, timeout))
	var seen string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		ok, what, err := Injected(ctx, client, ns, sa, roleARN)
		seen = what
		if err != nil {
			seen = err.Error()
		}
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("pods of service account %s/%s do not get the web identity of %s after %s (last seen: %s): is the pod identity webhook deployed and reachable? run `irsa apply --only webhook` or `irsa doctor %s/%s`", ns, sa, roleARN, timeout, seen, ns, sa)
	}
	return nil
}
