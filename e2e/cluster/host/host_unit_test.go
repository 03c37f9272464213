package host

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestTemplatesGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		template string
		data     map[string]string
	}{
		{"kubeadm.yaml", map[string]string{
			"Name": "irsa-e2e", "NodeName": "irsa-e2e-control-plane", "NodeIP": NodeIP,
			"CRISocket": "/var/lib/irsa-e2e/irsa-e2e/containerd/containerd.sock", "KubernetesVersion": KubernetesVersion,
			"PodCIDR": PodCIDR, "ServiceCIDR": ServiceCIDR, "EtcdDir": "/var/lib/irsa-e2e/irsa-e2e/etcd",
			"PatchesDir": "/var/lib/irsa-e2e/irsa-e2e/kubeadm-patches",
		}},
		{"containerd.toml", map[string]string{
			"Dir": "/var/lib/irsa-e2e/irsa-e2e/containerd", "Socket": "/var/lib/irsa-e2e/irsa-e2e/containerd/containerd.sock",
			"PauseImage": "registry.k8s.io/pause:3.10.2", "CNIBinDir": cniBinDir, "CNIConfDir": "/var/lib/irsa-e2e/irsa-e2e/cni/net.d",
		}},
		{"cni.conflist", map[string]string{"IPAMDir": "/var/lib/irsa-e2e/irsa-e2e/cni/ipam", "PodSubnet": PodSubnet}},
		{"kube-proxy.yaml", map[string]string{"PodCIDR": PodCIDR, "NodeName": "irsa-e2e-control-plane", "NodeIP": NodeIP}},
	} {
		t.Run(tc.template, func(t *testing.T) {
			t.Parallel()
			got, err := render(tc.template, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.template+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from %s:\n%s", tc.template, golden, got)
			}
		})
	}
}

func TestTemplateMissingKey(t *testing.T) {
	t.Parallel()
	if _, err := render("kube-proxy.yaml", map[string]string{"PodCIDR": PodCIDR}); err == nil {
		t.Error("render with a missing key succeeded, want an error")
	}
}

func TestParseKubeadmFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  string
		want []string
	}{
		{`KUBELET_KUBEADM_ARGS="--node-ip=10.250.250.2 --pod-infra-container-image=registry.k8s.io/pause:3.10.2"` + "\n",
			[]string{"--node-ip=10.250.250.2", "--pod-infra-container-image=registry.k8s.io/pause:3.10.2"}},
		{"# comment\nKUBELET_KUBEADM_ARGS='--a=b'\n", []string{"--a=b"}},
		{`KUBELET_KUBEADM_ARGS=""`, []string{}},
		{"OTHER=1\n", nil},
	} {
		got := parseKubeadmFlags(tc.env)
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseKubeadmFlags(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`/var/lib/kubelet/pods/x/volumes`: "/var/lib/kubelet/pods/x/volumes",
		`/mnt/with\040space`:              "/mnt/with space",
		`/a\134b`:                         `/a\b`,
		`/trailing\04`:                    `/trailing\04`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"irsa-e2e": true, "a": true, "e2e-2": true,
		"": false, "-a": false, "a-": false, "Upper": false, "a_b": false, "a.b": false, strings.Repeat("a", 21): false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestValidateSaysWhatToRun(t *testing.T) {
	t.Parallel()
	o, err := Options{BinDir: t.TempDir()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	err = o.validate()
	if err == nil {
		t.Fatal("validate with an empty bin dir and no images succeeded")
	}
	for _, want := range []string{"kubeadm missing", "hack/build-kubernetes.sh", "no image tarballs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validate() = %v, want it to mention %q", err, want)
		}
	}
}
