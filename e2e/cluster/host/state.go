package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// StateDir holds one state file per cluster and the lock that lets one host cluster run on a machine at a time
// (kubeadm's /etc/kubernetes and /var/lib/kubelet are machine-wide).
const StateDir = "/var/lib/irsa-e2e"

// globalDirs are the machine-wide directories a node writes to. One that did not exist before Up is removed whole
// by Delete; in one that did, only the entries Up added are removed.
var globalDirs = []string{
	"/etc/kubernetes", "/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/cni", "/run/containerd",
	"/run/containerd/s", "/run/netns",
}

// state is everything a later run needs to undo this one if it crashed: written before each change.
type state struct {
	Name       string              `json:"name"`
	NetNS      string              `json:"netns"`
	HostVeth   string              `json:"hostVeth"`
	WorkDir    string              `json:"workDir"`
	CRISocket  string              `json:"criSocket"`
	KubeadmBin string              `json:"kubeadmBin"`
	Procs      []*proc             `json:"procs"`
	Created    []string            `json:"created"`
	Baseline   map[string][]string `json:"baseline"`
	Cgroups    []string            `json:"cgroups"`
	file       string
}

func stateFile(name string) string { return filepath.Join(StateDir, name+".state.json") }

func (s *state) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state %s: %w", s.file, err)
	}
	if err := os.Rename(tmp, s.file); err != nil {
		return fmt.Errorf("write state %s: %w", s.file, err)
	}
	return nil
}

func loadStates() ([]*state, error) {
	files, err := filepath.Glob(filepath.Join(StateDir, "*.state.json"))
	if err != nil {
		return nil, err
	}
	var out []*state
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read state %s: %w", f, err)
		}
		s := &state{}
		if err := json.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("parse state %s (delete it after cleaning up by hand): %w", f, err)
		}
		s.file = f
		out = append(out, s)
	}
	return out, nil
}

// recordBaseline notes which global dirs and cgroups exist before the node starts.
func (s *state) recordBaseline() {
	s.Baseline = map[string][]string{}
	for _, d := range globalDirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			s.Created = append(s.Created, d)
			continue
		}
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		s.Baseline[d] = names
	}
	// cgroup v1 controllers (and the unified hierarchy of hybrid mode), or the cgroup2 root.
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, r := range roots {
		if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(r, "cgroup.procs")); err != nil {
			continue
		}
		kp := filepath.Join(r, "kubepods")
		if _, err := os.Stat(kp); errors.Is(err, os.ErrNotExist) {
			s.Cgroups = append(s.Cgroups, kp)
		}
	}
}

// newEntries lists the entries of a global dir that were not there before Up.
func (s *state) newEntries(dir string) []string {
	before := map[string]bool{}
	for _, n := range s.Baseline[dir] {
		before[n] = true
	}
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if !before[e.Name()] {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// lock is an exclusive flock on StateDir/lock; the kernel drops it when the process dies, so a crashed run never
// blocks the next one.
type lock struct{ f *os.File }

func acquireLock(deadline time.Time, waiting func()) (*lock, error) {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", StateDir, err)
	}
	path := filepath.Join(StateDir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: another host cluster is running on this machine (see %s/*.state.json)", path, StateDir)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (l *lock) release() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}

// mountsUnder lists mount points at or below any of the roots, deepest first.
func mountsUnder(roots ...string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountPath(f[4])
		for _, r := range roots {
			if r != "" && (mp == r || strings.HasPrefix(mp, strings.TrimSuffix(r, "/")+"/")) {
				out = append(out, mp)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
