package manifest

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// kubeadm regenerates the static pod manifests from the ClusterConfiguration stored in the kubeadm-config ConfigMap
// on `kubeadm upgrade` (and `kubeadm init phase control-plane`), dropping flags written into the manifest only
// (kubernetes/kubeadm#2157). The functions here keep the flags irsa changes in that ClusterConfiguration too.
const (
	// KubeadmConfigNamespace/KubeadmConfigName name the ConfigMap kubeadm stores its configuration in, and
	// ClusterConfigurationKey its key holding the ClusterConfiguration.
	KubeadmConfigNamespace  = "kube-system"
	KubeadmConfigName       = "kubeadm-config"
	ClusterConfigurationKey = "ClusterConfiguration"
	// KubeadmRecordAnnotation, on the kubeadm-config ConfigMap, holds the apiServer.extraArgs entries of the flags
	// irsa changes as they were before irsa first changed them (same shape as RecordAnnotation), so teardown can
	// put them back.
	KubeadmRecordAnnotation = "irsa.irsa-anywhere.io/original-extra-args"
	// kubeadmAPIVersion is the only ClusterConfiguration version irsa edits: from v1beta4 (kubeadm v1.31) on,
	// apiServer.extraArgs is a list of name/value pairs that may repeat a name, which several
	// --service-account-issuer values need. In v1beta3 it is a map: one issuer only.
	kubeadmAPIVersion = "kubeadm.k8s.io/v1beta4"
)

// KubeadmArgs are apiServer.extraArgs values by flag name (without dashes), in order, for the flags irsa changes.
// A name with no values means "no entry": kubeadm then writes its own default for the flag.
type KubeadmArgs map[string][]string

// PodKubeadmArgs returns the values the kube-apiserver container of pod (a manifest as irsa patched it) gives the
// flags irsa changes: what apiServer.extraArgs must hold for kubeadm to write the same flags again.
func PodKubeadmArgs(pod *corev1.Pod) (KubeadmArgs, error) {
	c, err := Container(pod)
	if err != nil {
		return nil, err
	}
	args := KubeadmArgs{}
	for _, name := range touchedFlags {
		args[name] = containerFlags(c).values(name)
	}
	return args, nil
}

// Equal says whether two KubeadmArgs give the flags irsa changes the same values in the same order.
func (a KubeadmArgs) Equal(b KubeadmArgs) bool {
	for _, name := range touchedFlags {
		if !slices.Equal(a[name], b[name]) {
			return false
		}
	}
	return true
}

// extraArg is one v1beta4 apiServer.extraArgs entry.
type extraArg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// clusterConfiguration is a ClusterConfiguration read loosely, so that every field irsa does not edit is written
// back as it was (kubeadm writes its documents with sorted keys, as sigs.k8s.io/yaml does).
type clusterConfiguration struct {
	doc       map[string]any
	extraArgs []extraArg
}

func parseClusterConfiguration(doc []byte) (*clusterConfiguration, error) {
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("parse kubeadm ClusterConfiguration: %w", err)
	}
	if m["kind"] != "ClusterConfiguration" || m["apiVersion"] != kubeadmAPIVersion {
		return nil, fmt.Errorf("kubeadm ClusterConfiguration: kind %v apiVersion %v, want ClusterConfiguration %s (kubeadm v1.31 or later: older versions hold one --service-account-issuer only; run `kubeadm upgrade` first)",
			m["kind"], m["apiVersion"], kubeadmAPIVersion)
	}
	cc := &clusterConfiguration{doc: m}
	apiServer, _ := m["apiServer"].(map[string]any)
	if raw, ok := apiServer["extraArgs"]; ok && raw != nil {
		b, err := json.Marshal(raw)
		if err != nil {
			return nil, fmt.Errorf("kubeadm ClusterConfiguration apiServer.extraArgs: %w", err)
		}
		if err := json.Unmarshal(b, &cc.extraArgs); err != nil {
			return nil, fmt.Errorf("kubeadm ClusterConfiguration apiServer.extraArgs %s: want a list of name/value pairs: %w", b, err)
		}
	}
	return cc, nil
}

// ClusterConfigurationArgs returns the apiServer.extraArgs values of the flags irsa changes in a kubeadm v1beta4
// ClusterConfiguration document.
func ClusterConfigurationArgs(doc []byte) (KubeadmArgs, error) {
	cc, err := parseClusterConfiguration(doc)
	if err != nil {
		return nil, err
	}
	args := KubeadmArgs{}
	for _, name := range touchedFlags {
		args[name] = []string{}
	}
	for _, a := range cc.extraArgs {
		if _, ours := args[a.Name]; ours {
			args[a.Name] = append(args[a.Name], a.Value)
		}
	}
	return args, nil
}

// SetClusterConfigurationArgs returns the kubeadm v1beta4 ClusterConfiguration document with apiServer.extraArgs
// holding exactly args for each flag irsa changes: a flag's entries replace its old ones where the first of them
// was, a flag that had none is appended, and a flag with no values loses its entries. Every other entry and field
// is kept. kubeadm writes a repeated extraArgs name as that many flags, in order, after its defaults (which an
// entry of the same name replaces), so the apiserver it regenerates has the same issuers in the same order. When
// nothing changes the input bytes are returned with false.
func SetClusterConfigurationArgs(doc []byte, args KubeadmArgs) ([]byte, bool, error) {
	cc, err := parseClusterConfiguration(doc)
	if err != nil {
		return nil, false, err
	}
	var out []extraArg
	placed := map[string]bool{}
	entries := func(name string) []extraArg {
		placed[name] = true
		var e []extraArg
		for _, v := range args[name] {
			e = append(e, extraArg{Name: name, Value: v})
		}
		return e
	}
	for _, a := range cc.extraArgs {
		if _, ours := args[a.Name]; !ours || !slices.Contains(touchedFlags, a.Name) {
			out = append(out, a)
			continue
		}
		if !placed[a.Name] {
			out = append(out, entries(a.Name)...)
		}
	}
	for _, name := range touchedFlags {
		if _, ours := args[name]; ours && !placed[name] {
			out = append(out, entries(name)...)
		}
	}
	if slices.Equal(out, cc.extraArgs) {
		return doc, false, nil
	}
	apiServer, _ := cc.doc["apiServer"].(map[string]any)
	if apiServer == nil {
		apiServer = map[string]any{}
		cc.doc["apiServer"] = apiServer
	}
	if len(out) == 0 {
		delete(apiServer, "extraArgs")
	} else {
		apiServer["extraArgs"] = out
	}
	b, err := yaml.Marshal(cc.doc)
	if err != nil {
		return nil, false, fmt.Errorf("encode kubeadm ClusterConfiguration: %w", err)
	}
	return b, true, nil
}

// EncodeKubeadmRecord and DecodeKubeadmRecord read and write the value of KubeadmRecordAnnotation.
func EncodeKubeadmRecord(args KubeadmArgs) (string, error) {
	b, err := json.Marshal(record{Flags: args})
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", KubeadmRecordAnnotation, err)
	}
	return string(b), nil
}

// DecodeKubeadmRecord is the inverse of EncodeKubeadmRecord; a record missing a flag irsa changes is an error.
func DecodeKubeadmRecord(raw string) (KubeadmArgs, error) {
	var rec record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decode annotation %s %q: %w", KubeadmRecordAnnotation, raw, err)
	}
	for _, name := range touchedFlags {
		if _, ok := rec.Flags[name]; !ok {
			return nil, fmt.Errorf("annotation %s %q: no entry for --%s", KubeadmRecordAnnotation, raw, name)
		}
	}
	return KubeadmArgs(rec.Flags), nil
}

// Defaults kubeadm writes into the kube-apiserver manifest for the flags irsa changes when apiServer.extraArgs has
// no entry for them (k8s.io/kubernetes cmd/kubeadm/app/phases/controlplane/manifests.go, getAPIServerCommand, v1.37):
// the issuer from networking.dnsDomain, the key pair sa.pub/sa.key in certificatesDir, no --api-audiences.
const (
	kubeadmDefaultDNSDomain       = "cluster.local"
	kubeadmDefaultCertificatesDir = "/etc/kubernetes/pki"
)

// KubeadmManifestRecord returns the value of RecordAnnotation for a manifest that kubeadm writes from
// clusterConfiguration (a v1beta4 ClusterConfiguration document) once apiServer.extraArgs holds original again: for
// each flag irsa changes, original's values, or, where original has no entry, the value kubeadm writes by default.
//
// A manifest kubeadm wrote again from the kubeadm-config irsa changed (`kubeadm upgrade`, kubernetes/kubeadm#2157)
// has irsa's flags but not irsa's record; with this record Unpatch gives the flags kubeadm would write after
// teardown restored kubeadm-config, without running kubeadm on the node.
func KubeadmManifestRecord(original KubeadmArgs, clusterConfiguration []byte) (string, error) {
	cc, err := parseClusterConfiguration(clusterConfiguration)
	if err != nil {
		return "", err
	}
	networking, _ := cc.doc["networking"].(map[string]any)
	dnsDomain, _ := networking["dnsDomain"].(string)
	if dnsDomain == "" {
		dnsDomain = kubeadmDefaultDNSDomain
	}
	certs, _ := cc.doc["certificatesDir"].(string)
	if certs == "" {
		certs = kubeadmDefaultCertificatesDir
	}
	defaults := map[string][]string{
		flagIssuer:     {"https://kubernetes.default.svc." + dnsDomain},
		flagKeyFile:    {path.Join(certs, "sa.pub")},
		flagSigningKey: {path.Join(certs, "sa.key")},
		flagAudiences:  {},
	}
	rec := record{Flags: map[string][]string{}}
	for _, name := range touchedFlags {
		v := original[name]
		if len(v) == 0 {
			v = defaults[name]
		}
		rec.Flags[name] = slices.Clone(v)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", RecordAnnotation, err)
	}
	return string(b), nil
}

// WithRecord returns the manifest with RecordAnnotation set to rec when it has none (see KubeadmManifestRecord),
// and the manifest unchanged when it already has one: irsa's own record always wins.
func WithRecord(manifest []byte, rec string) ([]byte, bool, error) {
	pod, err := Parse(manifest)
	if err != nil {
		return nil, false, err
	}
	if _, ok := pod.Annotations[RecordAnnotation]; ok {
		return manifest, false, nil
	}
	var r record
	if err := json.Unmarshal([]byte(rec), &r); err != nil {
		return nil, false, fmt.Errorf("record %q: %w", rec, err)
	}
	for _, name := range touchedFlags {
		if _, ok := r.Flags[name]; !ok {
			return nil, false, fmt.Errorf("record %q: no entry for --%s", rec, name)
		}
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[RecordAnnotation] = rec
	return render(manifest, pod)
}
