//go:build release

package release

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// artifact is one entry of goreleaser's artifacts.json.
type artifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	Type   string `json:"type"`
}

func dist(t *testing.T) (string, []artifact) {
	t.Helper()
	dir := os.Getenv("IRSA_RELEASE_DIST")
	if dir == "" {
		t.Fatal("IRSA_RELEASE_DIST is not set: run make release-snapshot")
	}
	data, err := os.ReadFile(filepath.Join(dir, "artifacts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var arts []artifact
	if err := json.Unmarshal(data, &arts); err != nil {
		t.Fatal(err)
	}
	for i := range arts {
		if !filepath.IsAbs(arts[i].Path) {
			// goreleaser writes paths relative to the repository root; tests run in hack/release.
			arts[i].Path = filepath.Join("..", "..", arts[i].Path)
		}
	}
	return dir, arts
}

func byType(arts []artifact, typ string) []artifact {
	var out []artifact
	for _, a := range arts {
		if a.Type == typ {
			out = append(out, a)
		}
	}
	return out
}

func platforms(arts []artifact) []string {
	var p []string
	for _, a := range arts {
		p = append(p, a.GOOS+"/"+a.GOARCH)
	}
	slices.Sort(p)
	return p
}

var wantPlatforms = []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestBinariesAndArchivesForEveryPlatform(t *testing.T) {
	_, arts := dist(t)
	if got := platforms(byType(arts, "Binary")); !slices.Equal(got, wantPlatforms) {
		t.Errorf("binaries for %v, want %v", got, wantPlatforms)
	}
	archives := byType(arts, "Archive")
	if got := platforms(archives); !slices.Equal(got, wantPlatforms) {
		t.Errorf("archives for %v, want %v", got, wantPlatforms)
	}
	for _, a := range archives {
		files := tarGzNames(t, a.Path)
		for _, want := range []string{"irsa", "LICENSE", "NOTICE", "README.md", "CHANGELOG.md"} {
			if !slices.Contains(files, want) {
				t.Errorf("%s lacks %s (has %v)", a.Name, want, files)
			}
		}
	}
}

func tarGzNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		names = append(names, h.Name)
	}
}

// Every archive and SBOM is in checksums.txt with its right SHA-256, as `sha256sum -c` would check.
func TestChecksums(t *testing.T) {
	dir, arts := dist(t)
	f, err := os.Open(filepath.Join(dir, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("checksums.txt line %q: want SUM  NAME", sc.Text())
		}
		listed[name] = sum
	}
	for _, a := range append(byType(arts, "Archive"), byType(arts, "SBOM")...) {
		sum, ok := listed[a.Name]
		if !ok {
			t.Errorf("%s is not in checksums.txt", a.Name)
			continue
		}
		if got := sha256File(t, a.Path); got != sum {
			t.Errorf("%s: sha256 %s, checksums.txt says %s", a.Name, got, sum)
		}
	}
}

// One CycloneDX SBOM per binary, listing the modules compiled in.
func TestSBOMs(t *testing.T) {
	_, arts := dist(t)
	sboms := byType(arts, "SBOM")
	if len(sboms) != len(wantPlatforms) {
		t.Fatalf("%d SBOMs, want one per binary (%d)", len(sboms), len(wantPlatforms))
	}
	for _, s := range sboms {
		data, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		var bom struct {
			BOMFormat  string `json:"bomFormat"`
			Components []struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"components"`
		}
		if err := json.Unmarshal(data, &bom); err != nil || bom.BOMFormat != "CycloneDX" {
			t.Errorf("%s: bomFormat %q, %v; want a CycloneDX JSON document", s.Name, bom.BOMFormat, err)
			continue
		}
		var names []string
		for _, c := range bom.Components {
			names = append(names, c.Name)
		}
		for _, want := range []string{"github.com/aws/aws-sdk-go-v2", "k8s.io/client-go"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s: no component %s among %d", s.Name, want, len(names))
			}
		}
	}
}

// The binary for this machine says which commit it is and which images it deploys; a snapshot is a development
// build, so it names the dev tag rather than an image nobody published.
func TestBinaryVersion(t *testing.T) {
	_, arts := dist(t)
	var native string
	for _, a := range byType(arts, "Binary") {
		if a.GOOS == runtime.GOOS && a.GOARCH == runtime.GOARCH {
			native = a.Path
		}
	}
	if native == "" {
		t.Fatalf("no binary for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	out, err := exec.Command(native, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", native, err)
	}
	var v struct {
		Version, Commit, GoVersion string
		Images                     map[string]string
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s version -o json: %v\n%s", native, err, out)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if v.Commit != strings.TrimSpace(string(head)) {
		t.Errorf("commit %q, want HEAD %s", v.Commit, head)
	}
	if v.Version != "dev" || v.Images["irsa"] != config.IrsaImageFor("dev") || !strings.HasPrefix(v.GoVersion, "go1.") {
		t.Errorf("snapshot version = %+v, want a dev build naming %s", v, config.IrsaImageFor("dev"))
	}
	if v.Images["webhook"] != config.DefaultWebhookImage || v.Images["verify"] != config.DefaultVerifyImage {
		t.Errorf("images = %v", v.Images)
	}
}

// The image holds, for each architecture, exactly the binary goreleaser built for linux on it, under the name the
// binary deploys.
func TestImage(t *testing.T) {
	dir, arts := dist(t)
	p, err := layout.FromPath(filepath.Join(dir, "image"))
	if err != nil {
		t.Fatal(err)
	}
	outer, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	om, err := outer.IndexManifest()
	if err != nil || len(om.Manifests) != 1 {
		t.Fatalf("layout: %+v, %v; want one image index", om, err)
	}
	if ref := om.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; ref != config.IrsaImageFor("dev") {
		t.Errorf("image named %q, want %q", ref, config.IrsaImageFor("dev"))
	}
	idx, err := outer.ImageIndex(om.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, a := range byType(arts, "Binary") {
		if a.GOOS == "linux" {
			want[a.GOARCH] = sha256File(t, a.Path)
		}
	}
	seen := 0
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers, %v", cf.Architecture, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got := binarySum(t, rc, "usr/local/bin/irsa")
		rc.Close()
		if got != want[cf.Architecture] || cf.OS != "linux" || m.Platform.Architecture != cf.Architecture {
			t.Errorf("image for %s/%s (platform %+v): /usr/local/bin/irsa sha256 %s, want goreleaser's %s", cf.OS, cf.Architecture, m.Platform, got, want[cf.Architecture])
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/irsa"}) || cf.Config.User != "65532:65532" {
			t.Errorf("image for %s: entrypoint %v user %q", cf.Architecture, cf.Config.Entrypoint, cf.Config.User)
		}
		seen++
	}
	if seen != 2 {
		t.Errorf("image has %d platforms, want linux/amd64 and linux/arm64", seen)
	}
}

func binarySum(t *testing.T, r io.Reader, path string) string {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") == path {
			hs := sha256.New()
			io.Copy(hs, tr)
			return hex.EncodeToString(hs.Sum(nil))
		}
	}
}
