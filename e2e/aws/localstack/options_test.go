package localstack

import (
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// The options are checked on the request testcontainers-go would send; docker_test.go runs them for real.
func TestContainerOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		emulator  emulator
		opts      Options
		wantEnv   map[string]string
		noEnv     []string
		wantNet   string
		wantAlias string
	}{
		{
			name:     "localstack without token or network",
			emulator: localStack,
			opts:     Options{},
			wantEnv:  map[string]string{"SERVICES": "s3,iam,sts", "AWS_DEFAULT_REGION": DefaultRegion},
			noEnv:    []string{AuthTokenEnv},
		},
		{
			name:      "localstack with token on kind's network",
			emulator:  localStack,
			opts:      Options{AuthToken: "ls-token", Network: "kind", Alias: "localstack", Region: "eu-west-1"},
			wantEnv:   map[string]string{AuthTokenEnv: "ls-token", "AWS_DEFAULT_REGION": "eu-west-1"},
			wantNet:   "kind",
			wantAlias: "localstack",
		},
		{
			name:      "moto loads managed policies",
			emulator:  moto,
			opts:      Options{Network: "kind"},
			wantEnv:   map[string]string{"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
			noEnv:     []string{AuthTokenEnv},
			wantNet:   "kind",
			wantAlias: DefaultAlias,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Defaults filled in by hand: withDefaults reads $LOCALSTACK_AUTH_TOKEN, which would make the case
			// depend on the environment.
			o := tc.opts
			o.Image = "x"
			if o.Region == "" {
				o.Region = DefaultRegion
			}
			if o.Alias == "" {
				o.Alias = DefaultAlias
			}
			req := testcontainers.GenericContainerRequest{}
			// The LocalStack module mounts the Docker socket before user options run.
			req.HostConfigModifier = func(hc *container.HostConfig) { hc.Binds = []string{"/run/irsa-docker.sock:/var/run/docker.sock"} }
			for _, opt := range containerOptions(tc.emulator, o) {
				if err := opt.Customize(&req); err != nil {
					t.Fatalf("customize: %v", err)
				}
			}
			for k, v := range tc.wantEnv {
				if req.Env[k] != v {
					t.Errorf("env %s = %q, want %q", k, req.Env[k], v)
				}
			}
			for _, k := range tc.noEnv {
				if _, ok := req.Env[k]; ok {
					t.Errorf("env %s is set, want unset", k)
				}
			}
			if req.Labels[config.ManagedByTagKey] != config.ManagedByValue {
				t.Errorf("labels = %v, want %s=%s", req.Labels, config.ManagedByTagKey, config.ManagedByValue)
			}
			if len(req.ExposedPorts) != 1 || req.ExposedPorts[0] != tc.emulator.port {
				t.Errorf("exposed ports = %v, want [%s]", req.ExposedPorts, tc.emulator.port)
			}
			if req.WaitingFor == nil {
				t.Error("no wait strategy")
			}
			hc := &container.HostConfig{}
			req.HostConfigModifier(hc)
			want := []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
			got := hc.PortBindings[network.MustParsePort(tc.emulator.port)]
			if len(got) != 1 || got[0] != want[0] {
				t.Errorf("port bindings = %v, want %v", hc.PortBindings, want)
			}
			if len(hc.Binds) != 0 {
				t.Errorf("binds = %v, want the Docker socket dropped", hc.Binds)
			}
			if tc.wantNet == "" {
				if len(req.Networks) != 0 {
					t.Errorf("networks = %v, want none", req.Networks)
				}
				return
			}
			if len(req.Networks) != 1 || req.Networks[0] != tc.wantNet {
				t.Errorf("networks = %v, want [%s]", req.Networks, tc.wantNet)
			}
			if a := req.NetworkAliases[tc.wantNet]; len(a) != 1 || a[0] != tc.wantAlias {
				t.Errorf("aliases on %s = %v, want [%s]", tc.wantNet, a, tc.wantAlias)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	t.Setenv(AuthTokenEnv, "from-env")
	got := Options{}.withDefaults(DefaultLocalStackImage)
	want := Options{Image: DefaultLocalStackImage, Region: DefaultRegion, Alias: DefaultAlias, AuthToken: "from-env"}
	if got.Image != want.Image || got.Region != want.Region || got.Alias != want.Alias || got.AuthToken != want.AuthToken {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
	kept := Options{Image: "localstack/localstack:4.14", AuthToken: "explicit"}.withDefaults(DefaultLocalStackImage)
	if kept.Image != "localstack/localstack:4.14" || kept.AuthToken != "explicit" {
		t.Errorf("withDefaults overrode explicit values: %+v", kept)
	}
}
