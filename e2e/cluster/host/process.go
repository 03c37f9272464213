package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a long-running process of the node, identified by PID and start time so that a later run never signals
// a different process that reused the PID.
type proc struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	cmd   *exec.Cmd
	done  chan struct{}
}

// startInNetNS starts argv inside the node's network namespace with nsenter (not `ip netns exec`, which remounts
// /sys and hides the cgroup hierarchy from kubelet and containerd), logging to logDir/name.log.
func startInNetNS(netnsPath, logDir, name string, env []string, argv ...string) (*proc, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close()
	args := append([]string{"--net=" + netnsPath, "--"}, argv...)
	cmd := exec.Command("nsenter", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: a signal to the test's group (Ctrl-C, `timeout`) does not take the node down half-way;
	// Delete stops each process in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	p := &proc{Name: name, PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	p.Start, _ = procStartTime(p.PID)
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether a process started by this run has ended.
func (p *proc) exited() bool {
	if p.done == nil {
		return !p.alive()
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// alive is true when PID still names the process recorded (same start time).
func (p *proc) alive() bool {
	st, err := procStartTime(p.PID)
	return err == nil && st == p.Start && !isZombie(p.PID)
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and waits for the process to go.
func (p *proc) stop(grace time.Duration) error {
	if p == nil || p.PID <= 0 || !p.alive() {
		return nil
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	if p.waitGone(grace) {
		return nil
	}
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	if p.waitGone(10 * time.Second) {
		return nil
	}
	return fmt.Errorf("stop %s (pid %d): still running after SIGKILL", p.Name, p.PID)
}

func (p *proc) waitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p.done != nil {
			select {
			case <-p.done:
				return true
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if !p.alive() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// procStartTime is field 22 of /proc/PID/stat: the start time in clock ticks since boot.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// pidsInNetNS lists the processes whose network namespace is the one bind-mounted at netnsPath.
func pidsInNetNS(netnsPath string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(netnsPath, &want); err != nil {
		return nil, fmt.Errorf("stat network namespace %s: %w", netnsPath, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/"+e.Name()+"/ns/net", &st); err != nil {
			continue
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killPIDs sends SIGKILL to each PID (recorded with its start time first) and waits until all are gone.
func killPIDs(pids []int, timeout time.Duration) error {
	var procs []*proc
	for _, pid := range pids {
		st, err := procStartTime(pid)
		if err != nil {
			continue
		}
		procs = append(procs, &proc{Name: "pid " + strconv.Itoa(pid), PID: pid, Start: st})
	}
	var errs []error
	for _, p := range procs {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	for _, p := range procs {
		if !p.waitGone(timeout) {
			errs = append(errs, fmt.Errorf("pid %d still running after SIGKILL", p.PID))
		}
	}
	return errors.Join(errs...)
}

// run runs a short command to completion (inside the netns when netnsPath is set) and returns its combined output.
func run(ctx context.Context, netnsPath string, argv ...string) (string, error) {
	if netnsPath != "" {
		argv = append([]string{"nsenter", "--net=" + netnsPath, "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
