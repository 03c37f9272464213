// Package kubeapiserver starts a real etcd and kube-apiserver on loopback for tests, so stages are tested against
// the apiserver's own validation, RBAC, server-side apply and OIDC discovery rather than client-go fakes. There is no
// controller-manager, scheduler or kubelet: Deployments never become available and Jobs never run.
//
// The binaries come from hack/build-kubernetes.sh (~/.cache/irsa/bin/k8s-v1.37.2, or the directory in IRSA_K8S_BIN).
// A test that needs them fails when they are missing: it never skips.
package kubeapiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/irsa-anywhere/irsa/internal/testpki"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// KubernetesVersion is the version hack/build-kubernetes.sh builds.
const KubernetesVersion = "v1.37.2"

// DefaultIssuer is the --service-account-issuer when Options.Issuer is empty.
const DefaultIssuer = "https://irsa.test"

// AdminUser is the user of Server.Config: a member of system:masters.
const AdminUser = "irsa-test-admin"

// Options configure the apiserver.
type Options struct {
	// Issuer is the first --service-account-issuer, the one new tokens carry. Default DefaultIssuer.
	Issuer string
	// ExtraIssuers are further --service-account-issuer values: accepted for tokens, never used for signing.
	ExtraIssuers []string
	// APIAudiences is --api-audiences. Default [config.DefaultAudience].
	APIAudiences []string
	// ExtraArgs are appended to kube-apiserver's command line.
	ExtraArgs []string
}

// Server is a running etcd and kube-apiserver pair.
type Server struct {
	// URL is the apiserver's https endpoint, such as https://127.0.0.1:40123.
	URL string
	// Issuer is the first --service-account-issuer.
	Issuer string
	// Config is an admin (system:masters) client config; Client is a clientset for it.
	Config *rest.Config
	Client kubernetes.Interface
	// Kubeconfig is the path of an admin kubeconfig file for Config.
	Kubeconfig string
	// Dir holds the data, keys and logs. CAFile is the PEM CA of the serving certificate.
	Dir    string
	CAFile string
	// ServiceAccountKeyFile and ServiceAccountSigningKeyFile are the PEM public and private token keys.
	ServiceAccountKeyFile        string
	ServiceAccountSigningKeyFile string
	// APIServerLog and EtcdLog are the processes' combined output.
	APIServerLog string
	EtcdLog      string

	clientCA  *testpki.CA
	etcdURL   string
	etcd      *exec.Cmd
	apiserver *exec.Cmd
	exited    map[*exec.Cmd]chan struct{}
}

// BinDir is where the etcd and kube-apiserver binaries are looked for: $IRSA_K8S_BIN or
// ~/.cache/irsa/bin/k8s-<KubernetesVersion>.
func BinDir() string {
	if d := os.Getenv("IRSA_K8S_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("IRSA_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "irsa")
	}
	return filepath.Join(cache, "bin", "k8s-"+KubernetesVersion)
}

func binary(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s not found at %s: run hack/build-kubernetes.sh (or set IRSA_K8S_BIN to a directory with etcd and kube-apiserver %s)", name, p, KubernetesVersion)
	}
	return p, nil
}

// Start runs etcd and kube-apiserver until the test ends. It fails the test when they cannot start.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := StartProcess(tb.Context(), tb.TempDir(), opts)
	if s != nil {
		tb.Cleanup(s.Stop)
	}
	if err != nil {
		tb.Fatalf("start kube-apiserver: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("kube-apiserver log (tail):\n%s", tail(s.APIServerLog, 40))
		}
	})
	return s
}

// StartProcess runs etcd and kube-apiserver with their files in dir, for TestMain. The caller must call Stop, also
// when an error is returned with a non-nil Server.
func StartProcess(ctx context.Context, dir string, opts Options) (*Server, error) {
	etcdBin, err := binary("etcd")
	if err != nil {
		return nil, err
	}
	apiBin, err := binary("kube-apiserver")
	if err != nil {
		return nil, err
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if len(opts.APIAudiences) == 0 {
		opts.APIAudiences = []string{config.DefaultAudience}
	}
	s := &Server{Dir: dir, Issuer: opts.Issuer, exited: map[*exec.Cmd]chan struct{}{}}
	if err := s.writeKeys(); err != nil {
		return nil, err
	}
	s.EtcdLog = filepath.Join(dir, "etcd.log")
	s.APIServerLog = filepath.Join(dir, "kube-apiserver.log")

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if err := s.startEtcd(ctx, etcdBin, attempt); err != nil {
			lastErr = err
			s.Stop()
			continue
		}
		if err := s.startAPIServer(ctx, apiBin, opts); err != nil {
			lastErr = err
			s.Stop()
			continue
		}
		return s, nil
	}
	return s, lastErr
}

func (s *Server) startEtcd(ctx context.Context, bin string, attempt int) error {
	clientPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	dataDir := filepath.Join(s.Dir, "etcd-"+strconv.Itoa(attempt))
	cmd := exec.Command(bin,
		"--name=default", "--data-dir="+dataDir,
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	)
	if err := s.run(cmd, s.EtcdLog); err != nil {
		return fmt.Errorf("run etcd %s: %w", bin, err)
	}
	s.etcd = cmd
	client := &http.Client{Timeout: 2 * time.Second}
	err = s.poll(ctx, cmd, 30*time.Second, func() bool {
		resp, err := client.Get(clientURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("etcd on %s: %w; log tail:\n%s", clientURL, err, tail(s.EtcdLog, 20))
	}
	s.etcdURL = clientURL
	return nil
}

func (s *Server) startAPIServer(ctx context.Context, bin string, opts Options) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--etcd-servers=" + s.etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(s.Dir, "apiserver-certs"),
		"--tls-cert-file=" + filepath.Join(s.Dir, "serving.pem"),
		"--tls-private-key-file=" + filepath.Join(s.Dir, "serving-key.pem"),
		"--client-ca-file=" + filepath.Join(s.Dir, "client-ca.pem"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--service-account-key-file=" + s.ServiceAccountKeyFile,
		"--service-account-signing-key-file=" + s.ServiceAccountSigningKeyFile,
		"--service-account-issuer=" + opts.Issuer,
		"--api-audiences=" + strings.Join(opts.APIAudiences, ","),
	}
	for _, iss := range opts.ExtraIssuers {
		args = append(args, "--service-account-issuer="+iss)
	}
	args = append(args, opts.ExtraArgs...)
	cmd := exec.Command(bin, args...)
	if err := s.run(cmd, s.APIServerLog); err != nil {
		return fmt.Errorf("run kube-apiserver %s: %w", bin, err)
	}
	s.apiserver = cmd

	s.Config, err = s.UserConfig(AdminUser, "system:masters")
	if err != nil {
		return err
	}
	s.Client, err = kubernetes.NewForConfig(s.Config)
	if err != nil {
		return fmt.Errorf("client for %s: %w", s.URL, err)
	}
	var last string
	err = s.poll(ctx, cmd, 90*time.Second, func() bool {
		body, err := s.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		last = string(body)
		if err != nil {
			last = err.Error()
		}
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver on %s not ready: %w (last /readyz: %s); log tail:\n%s", s.URL, err, last, tail(s.APIServerLog, 30))
	}
	s.Kubeconfig = filepath.Join(s.Dir, "admin.kubeconfig")
	return s.writeKubeconfig(s.Kubeconfig)
}

// run starts cmd in its own process group with its output appended to logFile, and records when it exits.
func (s *Server) run(cmd *exec.Cmd, logFile string) error {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// etcd reads ETCD_* variables as flags: a stray one in the test environment must not reach it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	s.exited[cmd] = done
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	return nil
}

// poll asks ready every 100 ms until it says yes, the process exits or the timeout passes.
func (s *Server) poll(ctx context.Context, cmd *exec.Cmd, timeout time.Duration, ready func() bool) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		select {
		case <-s.exited[cmd]:
			return false, fmt.Errorf("process exited: %s", cmd.ProcessState)
		default:
		}
		return ready(), nil
	})
	if wait.Interrupted(err) {
		return fmt.Errorf("not ready after %s: %w", timeout, err)
	}
	return err
}

// Stop ends kube-apiserver, then etcd, by PID, and waits for both to exit.
func (s *Server) Stop() {
	for _, cmd := range []*exec.Cmd{s.apiserver, s.etcd} {
		if cmd == nil || cmd.Process == nil {
			continue
		}
		done := s.exited[cmd]
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	s.apiserver, s.etcd = nil, nil
}

// UserConfig returns a client config authenticated by a client certificate for user in groups. Without groups the
// user has no permissions beyond what RBAC grants it, which tests use for "forbidden" cases.
func (s *Server) UserConfig(user string, groups ...string) (*rest.Config, error) {
	certPEM, keyPEM, err := s.clientCA.Issue(pkix.Name{CommonName: user, Organization: groups}, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, fmt.Errorf("client certificate for %q: %w", user, err)
	}
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            s.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, CertData: certPEM, KeyData: keyPEM},
		QPS:             100, Burst: 200,
		Timeout: 30 * time.Second,
	}, nil
}

// UserClient is UserConfig as a clientset; it fails the test on error.
func (s *Server) UserClient(tb testing.TB, user string, groups ...string) kubernetes.Interface {
	tb.Helper()
	cfg, err := s.UserConfig(user, groups...)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// UserKubeconfig writes a kubeconfig file for user in groups (see UserConfig) and returns its path.
func (s *Server) UserKubeconfig(tb testing.TB, user string, groups ...string) string {
	tb.Helper()
	c, err := s.UserConfig(user, groups...)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), user+".kubeconfig")
	if err := writeKubeconfig(path, s.URL, user, c); err != nil {
		tb.Fatal(err)
	}
	return path
}

func (s *Server) writeKubeconfig(path string) error {
	return writeKubeconfig(path, s.URL, AdminUser, s.Config)
}

func writeKubeconfig(path, server, user string, c *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["irsa-test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: c.CAData}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData}
	kc.Contexts["irsa-test"] = &clientcmdapi.Context{Cluster: "irsa-test", AuthInfo: user}
	kc.CurrentContext = "irsa-test"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// writeKeys makes the serving CA and certificate, the client CA and the service account token keypair.
func (s *Server) writeKeys() error {
	servingCA, err := testpki.NewCA("irsa test apiserver CA")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := servingCA.Issue(pkix.Name{CommonName: "kube-apiserver"},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "127.0.0.1", "10.96.0.1"})
	if err != nil {
		return err
	}
	s.clientCA, err = testpki.NewCA("irsa test client CA")
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	s.ServiceAccountKeyFile = filepath.Join(s.Dir, "sa.pub")
	s.ServiceAccountSigningKeyFile = filepath.Join(s.Dir, "sa.key")
	files := map[string][]byte{
		s.CAFile:                                servingCA.PEM,
		filepath.Join(s.Dir, "serving.pem"):     certPEM,
		filepath.Join(s.Dir, "serving-key.pem"): keyPEM,
		filepath.Join(s.Dir, "client-ca.pem"):   s.clientCA.PEM,
		s.ServiceAccountKeyFile:                 pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		s.ServiceAccountSigningKeyFile:          pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
	}
	for f, b := range files {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

// HTTPClient returns an admin HTTP client for raw requests such as /openid/v1/jwks.
func (s *Server) HTTPClient() (*http.Client, error) {
	rt, err := rest.TransportFor(s.Config)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt, Timeout: 30 * time.Second}, nil
}
