package moto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A sandbox is a network namespace of moto's own, linked to this machine by a veth pair: this machine reaches moto
// at the sandbox's address, and a host cluster links its node to the sandbox with a second pair (host.Peer), so
// pods reach the same address. Nothing in the sandbox has a default route.
const (
	sandboxPrefix = "irsa-e2e-moto-"
	// sandboxNet is split into /30 links, one per running sandbox: .4k+1 on this machine, .4k+2 in the sandbox.
	sandboxNet = "10.250.251."
)

var sandboxSeq atomic.Int32

type sandbox struct {
	name    string // under /run/netns: irsa-e2e-moto-<pid>-<n>
	veth    string // this machine's end
	hostIP  string
	address string
}

func (s *sandbox) path() string { return "/run/netns/" + s.name }

func newSandbox(ctx context.Context) (*sandbox, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("moto sandbox: network namespaces need root")
	}
	if err := cleanStaleSandboxes(ctx); err != nil {
		return nil, err
	}
	n := sandboxSeq.Add(1)
	s := &sandbox{
		name: fmt.Sprintf("%s%d-%d", sandboxPrefix, os.Getpid(), n),
		veth: fmt.Sprintf("im%dx%d", os.Getpid(), n),
	}
	used, err := run(ctx, "", "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return nil, err
	}
	for k := 0; k < 64; k++ {
		host := sandboxNet + strconv.Itoa(4*k+1)
		if !strings.Contains(used, " "+host+"/") {
			s.hostIP, s.address = host, sandboxNet+strconv.Itoa(4*k+2)
			break
		}
	}
	if s.hostIP == "" {
		return nil, fmt.Errorf("moto sandbox: all 64 links in %s0/24 are in use", sandboxNet)
	}
	steps := [][]string{
		{"ip", "netns", "add", s.name},
		{"ip", "link", "add", s.veth, "type", "veth", "peer", "name", s.veth + "s"},
		{"ip", "link", "set", s.veth + "s", "netns", s.name},
		{"ip", "addr", "add", s.hostIP + "/30", "dev", s.veth},
		{"ip", "link", "set", s.veth, "up"},
	}
	inNS := [][]string{
		{"ip", "link", "set", s.veth + "s", "name", "eth0"},
		{"ip", "addr", "add", s.address + "/30", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "link", "set", "lo", "up"},
	}
	for _, st := range steps {
		if _, err := run(ctx, "", st...); err != nil {
			_ = s.remove(ctx)
			return nil, fmt.Errorf("moto sandbox %s: %w", s.name, err)
		}
	}
	for _, st := range inNS {
		if _, err := run(ctx, s.path(), st...); err != nil {
			_ = s.remove(ctx)
			return nil, fmt.Errorf("moto sandbox %s: %w", s.name, err)
		}
	}
	return s, nil
}

// remove kills whatever still runs in the sandbox (by PID) and deletes it; the veth pair goes with it.
func (s *sandbox) remove(ctx context.Context) error {
	var errs []error
	if _, err := os.Stat(s.path()); err == nil {
		errs = append(errs, killNetNS(s.path()))
		if _, err := run(ctx, "", "ip", "netns", "delete", s.name); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + s.veth); err == nil {
		if out, err := run(ctx, "", "ip", "link", "delete", s.veth); err != nil && !strings.Contains(out, "Cannot find device") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cleanStaleSandboxes removes the sandboxes of processes that are gone (a crashed or killed test).
func cleanStaleSandboxes(ctx context.Context) error {
	entries, _ := filepath.Glob("/run/netns/" + sandboxPrefix + "*")
	var errs []error
	for _, e := range entries {
		name := filepath.Base(e)
		pidStr, seq, ok := strings.Cut(strings.TrimPrefix(name, sandboxPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // its owner still runs
		}
		s := &sandbox{name: name, veth: fmt.Sprintf("im%dx%s", pid, seq)}
		errs = append(errs, s.remove(ctx))
	}
	return errors.Join(errs...)
}

// listen opens a TCP listener on addr inside the network namespace at nsPath: the socket stays in that namespace
// while this process serves it.
func listen(nsPath, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread changes namespace and is never handed back to the scheduler (no UnlockOSThread): it exits
		// with this goroutine.
		runtime.LockOSThread()
		ns, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter network namespace %s: %w", nsPath, err)}
			return
		}
		l, err := net.Listen("tcp", addr)
		ch <- result{l: l, err: err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, nsPath, r.err)
	}
	return r.l, nil
}

// killNetNS SIGKILLs every process in the network namespace at nsPath and waits until they are gone.
func killNetNS(nsPath string) error {
	var want syscall.Stat_t
	if err := syscall.Stat(nsPath, &want); err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil || bytes.Contains(b, []byte(") Z ")) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("pid %d in %s still runs after SIGKILL", pid, nsPath)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func run(ctx context.Context, nsPath string, argv ...string) (string, error) {
	if nsPath != "" {
		argv = append([]string{"nsenter", "--net=" + nsPath, "--"}, argv...)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
