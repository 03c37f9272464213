//go:build e2e

package scenario

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/e2e/images"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// irsaFunc runs irsa, records the run's duration under phase in the timing report, and fails the test on a non-zero
// exit.
type irsaFunc func(t *testing.T, phase string, args ...string) Result

// rotateKeyAndSync rotates the signing key of a cluster irsa set up with --signing-key generate (rotate-key stage,
// promote, retire), with a pod that assumes its role every few seconds from before the rotation, then replaces the
// apiserver's key by hand, as a kubeadm re-init would, and has doctor catch it and sync repair it. roleARN is the role
// of default/s3-echoer.
func rotateKeyAndSync(ctx context.Context, outer *testing.T, step func(string, func(*testing.T)), e *Env, mustIrsa irsaFunc, roleARN string) {
	k := e.Kube
	outer.Cleanup(func() {
		if err := removeHandKeys(); err != nil {
			outer.Errorf("remove the hand-made key files: %v", err)
		}
	})
	run := func(t *testing.T, args ...string) Result {
		t.Helper()
		r := e.Run(ctx, args...)
		if r.Code != 0 {
			t.Fatalf("%s", r)
		}
		return r
	}
	keyDir := flagValue(e.ExtraFlags, "--key-dir")
	var oldKID, oldToken, stagedKID string
	var rotating *corev1.Pod
	probeSince := time.Now()

	step("rotate-key: a pod assumes its role before the rotation", func(t *testing.T) {
		rotating = createProbeLoopPod(ctx, t, e, "rotating", "s3-echoer")
		waitProbeOK(ctx, t, e, rotating, probeSince)
		oldToken = stsToken(ctx, t, e, "s3-echoer")
		oldKID = kidOf(t, oldToken)
		if cur := fileKID(t, keys.PairIn(keyDir).PublicKeyPath); cur != oldKID {
			t.Fatalf("tokens carry kid %s, the key directory's key is %s", oldKID, cur)
		}
	})

	step("rotate-key stage", func(t *testing.T) {
		if r := e.Run(ctx, "rotate-key", "stage", "--dry-run"); r.Code != 2 || !strings.Contains(r.Stdout, "accepts the staged key") {
			t.Errorf("rotate-key stage --dry-run: want exit 2 and the plan\n%s", r)
		}
		r := run(t, "rotate-key", "stage", "-o", "json")
		restarts := apiserverRestarts(t, r)
		e.Time(fmt.Sprintf("irsa rotate-key stage (%d apiserver restart)", restarts), time.Now().Add(-r.Duration))
		stagedKID = fileKID(t, keys.NextPairIn(keyDir).PublicKeyPath)
		if restarts != 1 {
			t.Errorf("stage restarted %d apiservers, want 1 (one control-plane node)\n%s", restarts, r.Stdout)
		}
		if !slices.Contains(publishedKIDs(ctx, t, e), stagedKID) || !slices.Contains(servedKIDs(ctx, t, e), stagedKID) {
			t.Errorf("staged key %s: published %v, served %v; want it in both", stagedKID, publishedKIDs(ctx, t, e), servedKIDs(ctx, t, e))
		}
		if kid := kidOf(t, stsToken(ctx, t, e, "s3-echoer")); kid != oldKID {
			t.Errorf("after stage new tokens carry kid %s, want the current key %s", kid, oldKID)
		}
		if again := mustIrsa(t, "irsa rotate-key stage (again, no-op)", "rotate-key", "stage", "-o", "json"); strings.Contains(again.Stdout, `"changed": true`) {
			t.Errorf("second rotate-key stage changed something:\n%s", again.Stdout)
		}
		waitProbeOK(ctx, t, e, rotating, probeSince)
	})

	step("rotate-key promote", func(t *testing.T) {
		r := run(t, "rotate-key", "promote", "-o", "json")
		restarts := apiserverRestarts(t, r)
		e.Time(fmt.Sprintf("irsa rotate-key promote (%d apiserver restart)", restarts), time.Now().Add(-r.Duration))
		if restarts != 1 {
			t.Errorf("promote restarted %d apiservers, want 1\n%s", restarts, r.Stdout)
		}
		if kid := kidOf(t, stsToken(ctx, t, e, "s3-echoer")); kid != stagedKID {
			t.Errorf("after promote new tokens carry kid %s, want the staged key %s", kid, stagedKID)
		}
		if cur := fileKID(t, keys.PairIn(keyDir).PublicKeyPath); cur != stagedKID {
			t.Errorf("key directory's key after promote: %s, want %s", cur, stagedKID)
		}
		if err := assumeWithToken(ctx, e, roleARN, oldToken); err != nil {
			t.Errorf("a token of the previous key is refused after promote: %v", err)
		}
		waitProbeOK(ctx, t, e, rotating, probeSince)
		if _, logs, ok := runProbeJob(ctx, t, e, "after-promote", "s3-echoer"); !ok {
			t.Errorf("a new pod cannot assume its role after promote:\n%s", logs)
		}
	})

	step("rotate-key retire", func(t *testing.T) {
		if r := e.Run(ctx, "rotate-key", "retire", "--dry-run"); r.Code != 2 || !strings.Contains(r.Stdout, "retire time: ") || !strings.Contains(r.Stdout, oldKID) {
			t.Errorf("rotate-key retire --dry-run: want exit 2, the previous key and the retire time\n%s", r)
		} else {
			t.Logf("retire plan:\n%s", r.Stdout)
		}
		if r := e.Run(ctx, "rotate-key", "retire", "--yes"); r.Code == 0 || !strings.Contains(r.Stderr, "not before") {
			t.Errorf("rotate-key retire right after promote: want a refusal naming the retire time\n%s", r)
		}
		if r := e.Run(ctx, "rotate-key", "retire", "--force"); r.Code == 0 || !strings.Contains(r.Stderr, "--yes") {
			t.Errorf("rotate-key retire without a terminal and without --yes: want a refusal\n%s", r)
		}
		r := run(t, "rotate-key", "retire", "--force", "--yes", "-o", "json")
		restarts := apiserverRestarts(t, r)
		e.Time(fmt.Sprintf("irsa rotate-key retire (%d apiserver restart)", restarts), time.Now().Add(-r.Duration))
		if restarts != 1 {
			t.Errorf("retire restarted %d apiservers, want 1\n%s", restarts, r.Stdout)
		}
		if slices.Contains(publishedKIDs(ctx, t, e), oldKID) || slices.Contains(servedKIDs(ctx, t, e), oldKID) {
			t.Errorf("retired key %s still published (%v) or served (%v)", oldKID, publishedKIDs(ctx, t, e), servedKIDs(ctx, t, e))
		}
		// The gate, like STS, keeps fetched issuer documents for a minute.
		err := eventually(ctx, func() error {
			if err := assumeWithToken(ctx, e, roleARN, oldToken); awsclient.ErrorCode(err) != "InvalidIdentityToken" {
				return fmt.Errorf("AssumeRoleWithWebIdentity error %v (code %q)", err, awsclient.ErrorCode(err))
			}
			return nil
		})
		if err != nil {
			t.Errorf("a token of the retired key: %v, want InvalidIdentityToken from the strict STS gate", err)
		}
		if err := assumeWithToken(ctx, e, roleARN, stsToken(ctx, t, e, "s3-echoer")); err != nil {
			t.Errorf("a new token after retire: %v", err)
		}
		if _, logs, ok := runProbeJob(ctx, t, e, "after-retire", "s3-echoer"); !ok {
			t.Errorf("a new pod cannot assume its role after retire:\n%s", logs)
		}
		if again := e.Run(ctx, "rotate-key", "retire", "--yes", "-o", "json"); again.Code != 0 || strings.Contains(again.Stdout, `"changed": true`) {
			t.Errorf("second rotate-key retire is not a no-op:\n%s", again)
		}
		_ = k.CoreV1().Pods("default").Delete(context.WithoutCancel(ctx), rotating.Name, metav1.DeleteOptions{})
	})

	step("sync: a key replaced by hand is caught by doctor and repaired", func(t *testing.T) {
		handKID := replaceKeyByHand(ctx, t, e)
		d := e.Run(ctx, "doctor")
		if d.Code == 0 || !strings.Contains(d.Stdout, "✗ signing keys published") || !strings.Contains(d.Stdout, handKID) {
			t.Errorf("doctor does not catch the key replaced by hand (%s):\n%s", handKID, d)
		}
		if err := assumeWithToken(ctx, e, roleARN, stsToken(ctx, t, e, "s3-echoer")); awsclient.ErrorCode(err) != "InvalidIdentityToken" {
			t.Errorf("a token of the unpublished key: %v, want InvalidIdentityToken", err)
		}
		r := mustIrsa(t, "irsa sync", "sync")
		if !strings.Contains(r.Stdout, handKID) {
			t.Errorf("sync does not report publishing %s:\n%s", handKID, r)
		}
		if d := e.Run(ctx, "doctor"); !strings.Contains(d.Stdout, "✓ signing keys published") {
			t.Errorf("doctor after sync:\n%s", d)
		}
		if err := eventually(ctx, func() error { return assumeWithToken(ctx, e, roleARN, stsToken(ctx, t, e, "s3-echoer")) }); err != nil {
			t.Errorf("a token of the key replaced by hand, after sync: %v", err)
		}
		// irsa's key signs again; the hand-made key stays accepted and published, as any previous key does.
		mustIrsa(t, "irsa apply --only apiserver (irsa's key back)", "apply", "--only", "apiserver")
		if kid := kidOf(t, stsToken(ctx, t, e, "s3-echoer")); kid != stagedKID {
			t.Errorf("after apply new tokens carry kid %s, want irsa's key %s", kid, stagedKID)
		}
		// The kubelet replaces the mirror pod some seconds after the restart; until then plan still sees the hand
		// edit (the apiserver stage reads the mirror pod).
		err := wait.PollUntilContextTimeout(ctx, 3*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			return e.Run(ctx, "plan", "--only", "apiserver").Code == 0, nil
		})
		if err != nil {
			t.Errorf("plan --only apiserver still wants a change after apply: %v\n%s", err, e.Run(ctx, "plan", "--only", "apiserver"))
		}
	})
}

// replaceKeyByHand makes the node's apiserver sign with a new key, as a hand edit of the manifest would: the key
// files in /etc/kubernetes/pki, the signing flag pointed at the new key and its public key accepted. It returns the
// new key's kid once the apiserver signs with it.
func replaceKeyByHand(ctx context.Context, t *testing.T, e *Env) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := keys.KeyID(key.Public())
	priv, pub := "/etc/kubernetes/pki/e2e-hand-sa.key", "/etc/kubernetes/pki/e2e-hand-sa.pub"
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	const path = "/etc/kubernetes/manifests/kube-apiserver.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := manifest.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := manifest.Container(pod)
	if err != nil {
		t.Fatal(err)
	}
	var cmd []string
	for _, a := range c.Command {
		if strings.HasPrefix(a, "--service-account-signing-key-file=") {
			a = "--service-account-signing-key-file=" + priv
		}
		cmd = append(cmd, a)
	}
	c.Command = append(cmd, "--service-account-key-file="+pub)
	out, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	tmp := "/etc/kubernetes/kube-apiserver.yaml.e2e-hand"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // the kubelet must never read half a file
		t.Fatal(err)
	}
	start := time.Now()
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		tr, err := e.Kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, "s3-echoer", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{config.DefaultAudience}}}, metav1.CreateOptions{})
		if err != nil {
			return false, nil
		}
		got, _ := doctor.TokenKID(tr.Status.Token)
		return got == kid, nil
	})
	e.Time("hand-made key change (apiserver restart)", start)
	if err != nil {
		t.Fatalf("the apiserver does not sign with the hand-made key %s: %v", kid, err)
	}
	return kid
}

// eventually retries f for 90 s, past the minute the STS gate (like STS) keeps fetched issuer documents.
func eventually(ctx context.Context, f func() error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 5*time.Second, 90*time.Second, true, func(context.Context) (bool, error) {
		last = f()
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%w; last: %v", err, last)
	}
	return nil
}

// apiserverRestarts counts the kube-apiserver manifests a run's JSON report says it changed: one restart each.
func apiserverRestarts(t *testing.T, r Result) int {
	t.Helper()
	var rep struct {
		Stages []struct {
			Changes []struct{ Kind string }
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("report of %s: %v", r, err)
	}
	n := 0
	for _, s := range rep.Stages {
		for _, c := range s.Changes {
			if c.Kind == "kube-apiserver-manifest" {
				n++
			}
		}
	}
	return n
}

// createProbeLoopPod starts a pod of sa that assumes its role every 5 s (`irsa probe --every`), with the
// environment's endpoints and CA as the verify Job has them.
func createProbeLoopPod(ctx context.Context, t *testing.T, e *Env, name, sa string) *corev1.Pod {
	t.Helper()
	aws := e.Backends.AWS
	var env []corev1.EnvVar
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	if ep := aws.PodEndpoint(); ep != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_STS", Value: ep}, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_S3", Value: ep})
	}
	if aws.CAFile() != "" {
		ca, err := os.ReadFile(aws.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name + "-ca", Namespace: "default"}, Data: map[string]string{"ca.pem": string(ca)}}
		if _, err := e.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		env = append(env, corev1.EnvVar{Name: "AWS_CA_BUNDLE", Value: "/etc/irsa-ca/ca.pem"})
		mounts = append(mounts, corev1.VolumeMount{Name: "ca", MountPath: "/etc/irsa-ca"})
		volumes = append(volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name + "-ca"}}}})
	}
	fsGroup := int64(65532)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"irsa-e2e": name}},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa, RestartPolicy: corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{FSGroup: &fsGroup},
			Containers: []corev1.Container{{Name: "probe", Image: images.IrsaRef, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/usr/local/bin/irsa", "probe", "--every", "5s"}, Env: env, VolumeMounts: mounts}},
			Volumes: volumes,
		},
	}
	p, err := e.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPodRunning(ctx, t, e, "default", p.Name)
	return p
}

// waitProbeOK waits for the probe loop pod to report success after now, and fails the test on any failure it
// reported since since.
func waitProbeOK(ctx context.Context, t *testing.T, e *Env, pod *corev1.Pod, since time.Time) {
	t.Helper()
	after := time.Now().UTC().Truncate(time.Second)
	var logs string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		logs = podLogs(ctx, e, pod)
		sc := bufio.NewScanner(strings.NewReader(logs))
		for sc.Scan() {
			stamp, rest, _ := strings.Cut(sc.Text(), " ")
			at, err := time.Parse(time.RFC3339, stamp)
			if err == nil && !at.Before(after) && rest == "probe ok" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s reported no successful probe after %s:\n%s", pod.Name, after.Format(time.RFC3339), logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if stamp, rest, _ := strings.Cut(line, " "); strings.HasPrefix(rest, "probe failed") {
			if at, err := time.Parse(time.RFC3339, stamp); err == nil && !at.Before(since.UTC().Truncate(time.Second)) {
				t.Errorf("pod %s failed to assume its role during the rotation: %s", pod.Name, line)
			}
		}
	}
}

// stsToken is a fresh token of sa for the STS audience, as the webhook's projection gets one.
func stsToken(ctx context.Context, t *testing.T, e *Env, sa string) string {
	t.Helper()
	exp := int64(3600)
	tr, err := e.Kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{config.DefaultAudience}, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	kid, err := doctor.TokenKID(token)
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func fileKID(t *testing.T, path string) string {
	t.Helper()
	pub, err := keys.LoadPublicKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := keys.KeyID(pub[0])
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// assumeWithToken calls AssumeRoleWithWebIdentity on the environment's STS endpoint (the strict STS gate with moto).
func assumeWithToken(ctx context.Context, e *Env, roleARN, token string) error {
	aws_ := e.Backends.AWS
	var ca []byte
	if aws_.CAFile() != "" {
		var err error
		if ca, err = os.ReadFile(aws_.CAFile()); err != nil {
			return err
		}
	}
	c, err := awsclient.New(ctx, awsclient.Options{Region: aws_.Region(), EndpointURL: aws_.Endpoint(), CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		return err
	}
	_, err = c.STS.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: &roleARN, WebIdentityToken: &token, RoleSessionName: aws.String("irsa-e2e-rotate")})
	return err
}

// publishedKIDs reads the JWKS anonymously from the issuer, as STS does.
func publishedKIDs(ctx context.Context, t *testing.T, e *Env) []string {
	t.Helper()
	pool, _ := x509.SystemCertPool()
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if f := e.Backends.AWS.CAFile(); f != "" {
		ca, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(ca)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, documents.JoinURL(e.IssuerURL, config.JWKSKey), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	kids, err := documents.PublishedKIDs(body)
	if err != nil {
		t.Fatalf("published JWKS (HTTP %d): %v\n%s", resp.StatusCode, err, body)
	}
	return kids
}

func servedKIDs(ctx context.Context, t *testing.T, e *Env) []string {
	t.Helper()
	set, err := apiserver.ServedKeys(ctx, e.Kube)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func flagValue(flags []string, name string) string {
	for i, f := range flags {
		if f == name && i+1 < len(flags) {
			return flags[i+1]
		}
	}
	return ""
}

// removeHandKeys deletes the key files replaceKeyByHand wrote.
func removeHandKeys() error {
	var errs []error
	for _, f := range []string{"/etc/kubernetes/pki/e2e-hand-sa.key", "/etc/kubernetes/pki/e2e-hand-sa.pub"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
