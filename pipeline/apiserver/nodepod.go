package apiserver

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// Labels and mount points of the node pod.
const (
	ComponentLabel   = "app.kubernetes.io/component"
	NodePodComponent = "apiserver-node"
	// BinaryPath is the irsa binary in the irsa image.
	BinaryPath       = "/usr/local/bin/irsa"
	keySecretName    = "irsa-signing-key"
	keySecretKey     = "sa.key"
	keyMountDir      = "/var/run/irsa/signing-key"
	hostKubernetes   = "/etc/kubernetes"
	nodeVerifyMargin = 30 * time.Second
)

// Container waiting reasons that will not resolve by waiting.
var stuckReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

type keySecret struct{ namespace, name string }

func (s kubeadm) labels() map[string]string {
	l := map[string]string{config.ManagedByTagKey: config.ManagedByValue, ComponentLabel: NodePodComponent}
	if s.opts.ClusterName != "" {
		l[config.ClusterLabel] = s.opts.ClusterName
	}
	return l
}

// createKeySecret puts the signing key where the node pods can mount it. It exists only while they run.
func (s kubeadm) createKeySecret(ctx context.Context) (*keySecret, error) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: keySecretName, Namespace: s.opts.Namespace, Labels: s.labels()},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{keySecretKey: s.opts.SigningKey},
	}
	secrets := s.client.CoreV1().Secrets(s.opts.Namespace)
	_, err := secrets.Create(ctx, secret, metav1.CreateOptions{FieldManager: config.FieldManager})
	if apierrors.IsAlreadyExists(err) {
		// Left by an interrupted run: replace it, it is irsa's.
		_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{FieldManager: config.FieldManager})
	}
	if err != nil {
		return nil, fmt.Errorf("create secret %s/%s with the signing key for the node pods: %w", s.opts.Namespace, keySecretName, explain(err))
	}
	return &keySecret{namespace: s.opts.Namespace, name: keySecretName}, nil
}

func (s kubeadm) deleteKeySecret(k *keySecret) {
	// Cleanup runs even when the caller's context is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.client.CoreV1().Secrets(k.namespace).Delete(ctx, k.name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Warn("could not delete the signing key secret: delete it by hand", "secret", k.namespace+"/"+k.name, "error", err)
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// nodePodName is irsa-<op>-<node>, cut to a valid pod name.
func nodePodName(op, nodeName string) string {
	name := "irsa-" + strings.TrimSuffix(op, "-apiserver") + "-apiserver-" + nonName.ReplaceAllString(strings.ToLower(nodeName), "-")
	if len(name) > 63 {
		name = name[:63]
	}
	return strings.TrimRight(name, "-.")
}

// nodePod is the short-lived pod that runs the node subcommand on one control-plane node. It runs as root (the
// manifest and keys are root's 0600 files) with no capabilities, on the host network so that it can ask the local
// apiserver whether it came back with the new issuer.
func (s kubeadm) nodePod(op, nodeName string, key *keySecret, timeout time.Duration, extraArgs ...string) *corev1.Pod {
	verifyTimeout := max(timeout-nodeVerifyMargin, timeout/2)
	cmd := append([]string{BinaryPath, "node", op, "--verify-timeout=" + verifyTimeout.String()}, extraArgs...)
	if op == node.PatchCommand {
		cmd = append(cmd, "--issuer-url="+s.opts.IssuerURL, "--audience="+s.opts.Audience)
	}
	root, no, yes := int64(0), false, true
	hostPathDir := corev1.HostPathDirectory
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: nodePodName(op, nodeName), Namespace: s.opts.Namespace, Labels: s.labels()},
		Spec: corev1.PodSpec{
			NodeName:                     nodeName,
			RestartPolicy:                corev1.RestartPolicyNever,
			HostNetwork:                  true,
			DNSPolicy:                    corev1.DNSClusterFirstWithHostNet,
			AutomountServiceAccountToken: &yes,
			// Control-plane taints, and not-ready while the apiserver restarts: tolerate them all.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:                     "irsa",
				Image:                    s.opts.Image,
				ImagePullPolicy:          corev1.PullIfNotPresent,
				Command:                  cmd,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
				},
				SecurityContext: &corev1.SecurityContext{
					RunAsUser:                &root,
					RunAsNonRoot:             &no,
					ReadOnlyRootFilesystem:   &yes,
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "etc-kubernetes", MountPath: hostKubernetes}},
			}},
			Volumes: []corev1.Volume{{
				Name:         "etc-kubernetes",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostKubernetes, Type: &hostPathDir}},
			}},
		},
	}
	for _, ps := range s.opts.ImagePullSecrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: ps})
	}
	if s.opts.Namespace == "kube-system" {
		// The priority admission plugin allows the system classes in kube-system only.
		pod.Spec.PriorityClassName = "system-node-critical"
	}
	if key != nil {
		mode := int32(0o400)
		c := &pod.Spec.Containers[0]
		c.Command = append(c.Command, "--signing-key-file="+keyMountDir+"/"+keySecretKey)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "signing-key", MountPath: keyMountDir, ReadOnly: true})
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
			Name:         "signing-key",
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: key.name, DefaultMode: &mode}},
		})
	}
	return pod
}

// runNodePod runs the node subcommand on one node, waits for it to finish and returns the Result it printed.
// The pod is deleted afterwards, also on failure.
func (s kubeadm) runNodePod(ctx context.Context, nodeName, op string, key *keySecret, timeout time.Duration, extraArgs ...string) (node.Result, error) {
	pods := s.client.CoreV1().Pods(s.opts.Namespace)
	pod := s.nodePod(op, nodeName, key, timeout, extraArgs...)
	// A pod left by an interrupted run would make Create fail; it is irsa's own, so it goes.
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return node.Result{}, fmt.Errorf("delete leftover pod %s/%s: %w", pod.Namespace, pod.Name, explain(err))
	}
	if err := s.waitGone(ctx, pod.Name); err != nil {
		return node.Result{}, err
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{FieldManager: config.FieldManager}); err != nil {
		return node.Result{}, fmt.Errorf("create pod %s/%s on node %s: %w", pod.Namespace, pod.Name, nodeName, explain(err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pods.Delete(cctx, pod.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			s.log.Warn("could not delete the node pod: delete it by hand", "pod", pod.Namespace+"/"+pod.Name, "error", err)
		}
	}()

	done, err := s.waitPodDone(ctx, pod.Name, nodeName, timeout)
	if err != nil {
		return node.Result{}, err
	}
	logs, logErr := pods.GetLogs(pod.Name, &corev1.PodLogOptions{Container: "irsa"}).DoRaw(ctx)
	res, parseErr := node.LastResult(logs)
	if parseErr != nil {
		msg := terminationMessage(done)
		if logErr != nil {
			return node.Result{}, fmt.Errorf("node pod %s on %s ended %s (%s) and its log could not be read: %w", pod.Name, nodeName, done.Status.Phase, msg, logErr)
		}
		return node.Result{}, fmt.Errorf("node pod %s on %s ended %s (%s) without a result line: %w; log: %s", pod.Name, nodeName, done.Status.Phase, msg, parseErr, truncate(logs))
	}
	if res.Error != "" || done.Status.Phase != corev1.PodSucceeded {
		rolled := ""
		if res.RolledBack {
			rolled = " (the node put its previous manifest back)"
		}
		return res, fmt.Errorf("%s on node %s failed%s: %s", op, nodeName, rolled, res.Error)
	}
	s.log.Debug("node pod done", "node", nodeName, "changed", res.Changed, "issuers", res.Issuers)
	return res, nil
}

// waitGone waits up to a minute for a leftover pod to be deleted.
func (s kubeadm) waitGone(ctx context.Context, name string) error {
	err := wait.PollUntilContextTimeout(ctx, s.opts.PollInterval, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := s.client.CoreV1().Pods(s.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("leftover pod %s/%s is still being deleted after a minute: %w", s.opts.Namespace, name, err)
	}
	return nil
}

// waitPodDone polls the pod until it succeeds or fails. Errors reading it are expected while the apiserver
// restarts (the pod restarts it) and are only remembered for the timeout message.
func (s kubeadm) waitPodDone(ctx context.Context, name, nodeName string, timeout time.Duration) (*corev1.Pod, error) {
	observed := "nothing yet"
	var done *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, s.opts.PollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		pod, err := s.client.CoreV1().Pods(s.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case cutShort(ctx):
			// The deadline cut this request short: the timeout error reports what was seen before it.
			return false, nil
		case err != nil:
			observed = "error reading the pod: " + err.Error()
			return false, nil
		case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			done = pod
			return true, nil
		}
		observed = "phase " + string(pod.Status.Phase)
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				observed += fmt.Sprintf(", container waiting: %s %s", w.Reason, w.Message)
				if stuckReasons[w.Reason] {
					return false, fmt.Errorf("node pod %s on %s cannot start: %s: %s (the image %s must be importable on the node: load it with `make image` and import it, or pass --image)", name, nodeName, w.Reason, w.Message, s.opts.Image)
				}
			}
		}
		return false, nil
	})
	if wait.Interrupted(err) {
		return nil, fmt.Errorf("node pod %s/%s on %s did not finish within %s; last observed: %s", s.opts.Namespace, name, nodeName, timeout, observed)
	}
	return done, err
}

func terminationMessage(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("exit code %d, %s: %s", t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
		}
	}
	return "no container status"
}
