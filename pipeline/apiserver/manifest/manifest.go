// Package manifest edits the kube-apiserver static pod manifest so that the apiserver issues service account tokens
// for the irsa issuer (Patch), accepts them without issuing them (PatchOptions.AcceptOnly), issues with the original
// issuer again (Demote) or goes back to its original flags (Unpatch). The functions are pure: bytes in, bytes out,
// pinned by the cases in testdata/manifest. The node package writes the result on a control-plane node; the
// apiserver stage applies the same edits to a copy of a node's mirror pod to see whether the node needs a change.
package manifest

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// Flags of kube-apiserver that irsa changes.
const (
	flagIssuer     = "service-account-issuer"
	flagAudiences  = "api-audiences"
	flagKeyFile    = "service-account-key-file"
	flagSigningKey = "service-account-signing-key-file"
)

// touchedFlags are recorded before the first patch so that Unpatch can put them back.
var touchedFlags = []string{flagIssuer, flagAudiences, flagKeyFile, flagSigningKey}

const (
	// RecordAnnotation, on the static pod, holds the values the flags irsa changes had before irsa first patched the
	// manifest. It makes a patched manifest self-describing: Unpatch restores from it when the backup is gone, and
	// the mirror pod shows the API which nodes are patched.
	RecordAnnotation = "irsa.irsa-anywhere.io/original-flags"
	// SigningKeyAnnotation carries the key ID of irsa's signing key. The apiserver reads its keys only at start, so
	// a new key must change the manifest for the kubelet to restart it.
	SigningKeyAnnotation = "irsa.irsa-anywhere.io/signing-key-id"
	// PKIVolume is the hostPath volume irsa adds when the apiserver does not already mount the key directory.
	PKIVolume = "irsa-pki"
	// ContainerName is the kube-apiserver container in the static pod.
	ContainerName = "kube-apiserver"
	// KeyFilePrefix starts the names of irsa's key files on a node (node.KeyFileNames): RetireOtherKeys tells
	// irsa's keys from the cluster's own by it.
	KeyFilePrefix = "irsa-sa-"
)

// PatchOptions say what the apiserver must serve.
type PatchOptions struct {
	// IssuerURL becomes the first --service-account-issuer: the iss claim of new tokens.
	IssuerURL string
	// Audience is added to --api-audiences.
	Audience string
	// SigningKey, when set, makes the apiserver sign with irsa's key pair; nil keeps the cluster's own key.
	SigningKey *KeyFiles
	// AcceptOnly makes the apiserver accept irsa's tokens without issuing them yet: the issuer is added as the
	// last --service-account-issuer (an issuer already listed keeps its place), the audience and the public key
	// are added, the signing key is left alone. With several control-plane nodes every apiserver must accept
	// irsa's tokens before any issues them, or a token issued by a patched apiserver fails on the others.
	AcceptOnly bool
	// RetireOtherKeys (with SigningKey, not AcceptOnly) removes irsa's other public keys (files named KeyFilePrefix*,
	// a rotation's previous keys) from --service-account-key-file: tokens they signed stop authenticating. The
	// cluster's own key files stay: kube-controller-manager signs legacy token Secrets with the cluster's key, and
	// Unpatch goes back to it.
	RetireOtherKeys bool
}

// KeyFiles are the paths of irsa's signing key pair on the node. The apiserver sees them at the same paths.
type KeyFiles struct {
	PrivateKey string
	PublicKey  string
	// KeyID identifies the key (the JWKS kid); it is written to the manifest so a new key restarts the apiserver.
	KeyID string
}

// record is the value of RecordAnnotation: the values each flag in touchedFlags had before irsa changed it (an empty
// list for a flag that was absent).
type record struct {
	Flags map[string][]string `json:"flags"`
}

// Validate checks the options before anything is read or written: the issuer URL and the audience by irsa's one
// set of rules (config.ValidateIssuerURL, config.ValidateAudience), key paths absolute.
func (o PatchOptions) Validate() error {
	if err := config.ValidateIssuerURL(o.IssuerURL); err != nil {
		return err
	}
	if err := config.ValidateAudience(o.Audience); err != nil {
		return err
	}
	if k := o.SigningKey; k != nil {
		if !path.IsAbs(k.PrivateKey) || !path.IsAbs(k.PublicKey) {
			return fmt.Errorf("signing key files %q and %q: must be absolute paths", k.PrivateKey, k.PublicKey)
		}
	}
	if o.RetireOtherKeys && (o.SigningKey == nil || o.AcceptOnly) {
		return fmt.Errorf("retiring irsa's other keys needs the signing key that stays, and is not done by an accept-only patch")
	}
	return nil
}

// Patch returns the kube-apiserver static pod manifest changed so that the apiserver issues tokens for
// opts.IssuerURL while tokens it issued before stay valid:
//   - opts.IssuerURL becomes the first --service-account-issuer; every previous issuer stays as an additional one
//     (the apiserver accepts tokens of every issuer listed and issues tokens with the first);
//   - --api-audiences gains opts.Audience and keeps its values. When it was unset the apiserver accepted the
//     audiences equal to its issuers, so those previous issuers become explicit values: tokens already held by pods
//     (bound to the old default audience) keep authenticating. The irsa issuer is not added as an audience: nothing
//     asks for it;
//   - with opts.SigningKey, --service-account-signing-key-file points to irsa's private key and its public key is
//     added to --service-account-key-file, whose previous files stay so tokens signed before still verify. The key
//     directory is mounted only when no existing hostPath mount exposes it.
//
// The values the changed flags had before are recorded in RecordAnnotation (once, at the first patch). Patch is
// idempotent: when nothing changes it returns the input bytes unchanged and false.
func Patch(manifest []byte, opts PatchOptions) ([]byte, bool, error) {
	if err := opts.Validate(); err != nil {
		return nil, false, err
	}
	pod, err := Parse(manifest)
	if err != nil {
		return nil, false, err
	}
	if err := PatchPod(pod, opts); err != nil {
		return nil, false, err
	}
	return render(manifest, pod)
}

// Unpatch returns the manifest with the flags irsa changed set back to the values recorded in RecordAnnotation,
// irsa's volume and annotations removed: the original issuer is first again. A manifest without the record was
// not patched by irsa (or was rewritten since, by kubeadm upgrade for example) and is returned unchanged.
func Unpatch(manifest []byte) ([]byte, bool, error) {
	pod, err := Parse(manifest)
	if err != nil {
		return nil, false, err
	}
	if err := unpatchPod(pod, false); err != nil {
		return nil, false, err
	}
	return render(manifest, pod)
}

// Demote is the first half of Unpatch on a cluster with several control-plane nodes: the original issuers are
// first again and the original signing key signs, while irsa's issuer, audience and public key stay accepted, so
// tokens issued by apiservers not yet demoted keep working everywhere. Unpatch afterwards removes the rest.
func Demote(manifest []byte) ([]byte, bool, error) {
	pod, err := Parse(manifest)
	if err != nil {
		return nil, false, err
	}
	if err := unpatchPod(pod, true); err != nil {
		return nil, false, err
	}
	return render(manifest, pod)
}

// Issuers returns the --service-account-issuer values of a manifest, first (the one the apiserver issues for)
// first.
func Issuers(manifest []byte) ([]string, error) {
	pod, err := Parse(manifest)
	if err != nil {
		return nil, err
	}
	return PodIssuers(pod)
}

// Audiences returns the --api-audiences values of a manifest, each value of a comma-separated list on its own.
func Audiences(manifest []byte) ([]string, error) {
	pod, err := Parse(manifest)
	if err != nil {
		return nil, err
	}
	c, err := Container(pod)
	if err != nil {
		return nil, err
	}
	return containerFlags(c).sliceValues(flagAudiences), nil
}

// PodIssuers returns the --service-account-issuer values of the kube-apiserver container of pod, first first.
func PodIssuers(pod *corev1.Pod) ([]string, error) {
	c, err := Container(pod)
	if err != nil {
		return nil, err
	}
	return containerFlags(c).values(flagIssuer), nil
}

// FlagValues returns every value the container gives the kube-apiserver flag name (without its dashes), in order,
// in both the --name=value and the --name value forms.
func FlagValues(c *corev1.Container, name string) []string {
	return containerFlags(c).values(name)
}

// IsPatched says whether the manifest carries irsa's record, that is whether irsa patched it.
func IsPatched(manifest []byte) (bool, error) {
	pod, err := Parse(manifest)
	if err != nil {
		return false, err
	}
	_, ok := pod.Annotations[RecordAnnotation]
	return ok, nil
}

// Parse reads a kube-apiserver manifest as a v1 Pod, strictly.
func Parse(manifest []byte) (*corev1.Pod, error) {
	var pod corev1.Pod
	// Strict: a field this version of the Pod type does not know would be dropped when writing the manifest back.
	if err := yaml.UnmarshalStrict(manifest, &pod); err != nil {
		return nil, fmt.Errorf("parse kube-apiserver manifest as a Pod: %w", err)
	}
	if pod.Kind != "Pod" || pod.APIVersion != "v1" {
		return nil, fmt.Errorf("parse kube-apiserver manifest: kind %q apiVersion %q, want a v1 Pod", pod.Kind, pod.APIVersion)
	}
	return &pod, nil
}

// SamePod says whether two manifests hold the same Pod, however they are formatted; an unreadable one is never the
// same.
func SamePod(a, b []byte) bool {
	pa, err := Parse(a)
	if err != nil {
		return false
	}
	pb, err := Parse(b)
	if err != nil {
		return false
	}
	ja, errA := json.Marshal(pa)
	jb, errB := json.Marshal(pb)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// Unchanged says whether change leaves a copy of pod (a node's mirror pod) as it is.
func Unchanged(pod *corev1.Pod, change func(*corev1.Pod) error) (bool, error) {
	c := pod.DeepCopy()
	before, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("encode pod %s: %w", pod.Name, err)
	}
	if err := change(c); err != nil {
		return false, err
	}
	after, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("encode pod %s: %w", pod.Name, err)
	}
	return string(before) == string(after), nil
}

// render writes the pod back, or returns the original bytes when the pod did not change.
func render(manifest []byte, pod *corev1.Pod) ([]byte, bool, error) {
	before, err := Parse(manifest)
	if err != nil {
		return nil, false, err
	}
	a, err := json.Marshal(before)
	if err != nil {
		return nil, false, fmt.Errorf("encode kube-apiserver manifest: %w", err)
	}
	b, err := json.Marshal(pod)
	if err != nil {
		return nil, false, fmt.Errorf("encode kube-apiserver manifest: %w", err)
	}
	if string(a) == string(b) {
		return manifest, false, nil
	}
	out, err := yaml.Marshal(pod)
	if err != nil {
		return nil, false, fmt.Errorf("encode kube-apiserver manifest: %w", err)
	}
	return out, true, nil
}

// Container returns the kube-apiserver container of the static pod; an error when there is none or when it runs
// kube-apiserver through a shell, whose command line irsa does not edit.
func Container(pod *corev1.Pod) (*corev1.Container, error) {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if c.Name != ContainerName {
			continue
		}
		// Flags are edited only where kube-apiserver reads them directly, never inside a shell command line.
		if len(c.Command) > 0 && path.Base(c.Command[0]) != "kube-apiserver" {
			return nil, fmt.Errorf("kube-apiserver manifest %q: the container runs %q, not kube-apiserver directly: irsa cannot edit its flags; configure the issuer by hand and use --cluster-type external", pod.Name, c.Command[0])
		}
		return c, nil
	}
	return nil, fmt.Errorf("kube-apiserver manifest %q: no container named %q", pod.Name, ContainerName)
}

// containerFlags returns the apiserver's flags: the command after the binary when the command carries them
// (kubeadm), else the args.
func containerFlags(c *corev1.Container) flagList {
	if flagsInCommand(c) {
		return flagList(c.Command[1:])
	}
	return flagList(c.Args)
}

func setContainerFlags(c *corev1.Container, flags flagList) {
	if flagsInCommand(c) {
		c.Command = append([]string{c.Command[0]}, flags...)
		return
	}
	c.Args = flags
}

func flagsInCommand(c *corev1.Container) bool {
	return len(c.Command) > 1 || len(c.Args) == 0
}

// PatchPod is Patch on a parsed Pod (a copy of a node's mirror pod, say), changed in place.
func PatchPod(pod *corev1.Pod, opts PatchOptions) error {
	c, err := Container(pod)
	if err != nil {
		return err
	}
	flags := containerFlags(c)
	if _, ok := pod.Annotations[RecordAnnotation]; !ok {
		rec := record{Flags: map[string][]string{}}
		for _, name := range touchedFlags {
			rec.Flags[name] = append([]string{}, flags.values(name)...)
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode %s: %w", RecordAnnotation, err)
		}
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[RecordAnnotation] = string(data)
	}

	issuers := flags.values(flagIssuer)
	audiences := flags.sliceValues(flagAudiences)
	if len(audiences) == 0 {
		// What kube-apiserver accepts when --api-audiences is unset: its issuers.
		audiences = issuers
	}
	if opts.AcceptOnly {
		flags = flags.set(flagIssuer, dedup(append(issuers, opts.IssuerURL)...))
	} else {
		flags = flags.set(flagIssuer, dedup(append([]string{opts.IssuerURL}, issuers...)...))
	}
	if want := dedup(append(append([]string{}, audiences...), opts.Audience)...); !slices.Equal(flags.sliceValues(flagAudiences), want) {
		flags = flags.set(flagAudiences, []string{strings.Join(want, ",")})
	}

	if k := opts.SigningKey; k != nil {
		if !opts.AcceptOnly {
			flags = flags.set(flagSigningKey, []string{k.PrivateKey})
			if k.KeyID != "" {
				pod.Annotations[SigningKeyAnnotation] = k.KeyID
			}
		}
		keyFiles := dedup(append(flags.values(flagKeyFile), k.PublicKey)...)
		if opts.RetireOtherKeys && !opts.AcceptOnly {
			keyFiles = slices.DeleteFunc(keyFiles, func(f string) bool {
				return f != k.PublicKey && strings.HasPrefix(path.Base(f), KeyFilePrefix)
			})
		}
		flags = flags.set(flagKeyFile, keyFiles)
		for _, dir := range dedup(path.Dir(k.PrivateKey), path.Dir(k.PublicKey)) {
			if !mounted(pod, c, dir) {
				addPKIVolume(pod, c, dir)
			}
		}
	}
	setContainerFlags(c, flags)
	return nil
}

// DemotePod is Demote on a parsed Pod, changed in place.
func DemotePod(pod *corev1.Pod) error { return unpatchPod(pod, true) }

func unpatchPod(pod *corev1.Pod, keepAccepting bool) error {
	raw, ok := pod.Annotations[RecordAnnotation]
	if !ok {
		return nil
	}
	var rec record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return fmt.Errorf("decode annotation %s %q: %w", RecordAnnotation, raw, err)
	}
	if len(rec.Flags[flagIssuer]) == 0 {
		return fmt.Errorf("annotation %s %q: records no previous --%s, refusing to leave the apiserver without one", RecordAnnotation, raw, flagIssuer)
	}
	c, err := Container(pod)
	if err != nil {
		return err
	}
	flags := containerFlags(c)
	for _, name := range touchedFlags {
		if _, ok := rec.Flags[name]; !ok {
			return fmt.Errorf("annotation %s %q: no entry for --%s", RecordAnnotation, raw, name)
		}
	}
	if keepAccepting {
		// Original issuers first, then the ones irsa added; the original signing key; everything accepted stays.
		flags = flags.set(flagIssuer, dedup(append(append([]string{}, rec.Flags[flagIssuer]...), flags.values(flagIssuer)...)...))
		flags = flags.set(flagSigningKey, rec.Flags[flagSigningKey])
		setContainerFlags(c, flags)
		delete(pod.Annotations, SigningKeyAnnotation)
		return nil
	}
	for _, name := range touchedFlags {
		flags = flags.set(name, rec.Flags[name])
	}
	setContainerFlags(c, flags)
	delete(pod.Annotations, RecordAnnotation)
	delete(pod.Annotations, SigningKeyAnnotation)
	if len(pod.Annotations) == 0 {
		pod.Annotations = nil
	}
	c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == PKIVolume })
	pod.Spec.Volumes = slices.DeleteFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == PKIVolume })
	return nil
}

// mounted says whether a hostPath mount of the container exposes the host directory dir at the same path.
func mounted(pod *corev1.Pod, c *corev1.Container, dir string) bool {
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name != m.Name || v.HostPath == nil {
				continue
			}
			host, mnt := path.Clean(v.HostPath.Path), path.Clean(m.MountPath)
			if host == mnt && (dir == host || strings.HasPrefix(dir, strings.TrimSuffix(host, "/")+"/")) {
				return true
			}
		}
	}
	return false
}

func addPKIVolume(pod *corev1.Pod, c *corev1.Container, dir string) {
	if slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == PKIVolume }) {
		return
	}
	pathType := corev1.HostPathDirectoryOrCreate
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
		Name:         PKIVolume,
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &pathType}},
	})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: PKIVolume, MountPath: dir, ReadOnly: true})
}
