// Package benchkit holds what the bench/ harnesses share: starting the
// pipeline binary as a subprocess and reading a process's CPU time.
package benchkit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a running `pipeline serve`.
type Proc struct {
	Addr string // host:port
	Base string // http://host:port
	cmd  *exec.Cmd
	done chan error
}

// PID is the process id, for ProcCPU.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Start builds the pipeline binary (unless bin is given) into dir and
// starts it on a free loopback port with config, a YAML body to which
// addr and data_dir (dir) are added. It returns once /healthz answers
// 200; the log is dir/pipeline.log.
func Start(ctx context.Context, bin, dir, config string) (*Proc, error) {
	if bin == "" {
		bin = filepath.Join(dir, "pipeline")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pipeline")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/pipeline (run from the repository root): %w", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	body := fmt.Sprintf("addr: %s\ndata_dir: %s\n%s", addr, dir, config)
	if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "pipeline.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the harness dies, the pipeline goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Proc{Addr: addr, Base: "http://" + addr, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.Base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("pipeline exited before it was ready (%v); log in %s", err, logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("pipeline not ready after 60s; log in %s", logPath)
		}
	}
}

// Stop ends the process with SIGTERM, and SIGKILL after 30 s.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ProcCPU is the user+system CPU time a process has used (Linux /proc).
func ProcCPU(pid int) time.Duration {
	st, ok := procStat(pid)
	if !ok {
		return 0
	}
	return time.Duration(st.utime+st.stime) * time.Second / clockTick
}

// SelfCPU is this process's user+system CPU time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Machine describes the cores, for the first line of a report.
func Machine() string {
	cpu := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	load := ""
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 0 {
			load = ", load average " + f[0]
		}
	}
	return fmt.Sprintf("%d cores (%s)%s", runtime.NumCPU(), cpu, load)
}

// clockTick is USER_HZ, the unit of /proc's CPU times on Linux.
const clockTick = 100

// MachineBusy is the CPU time all cores have spent on anything but idle
// and I/O wait since boot (/proc/stat): over a round, what the whole
// machine (the harness, the servers, anything else running) spent.
func MachineBusy() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(fields[i], 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTick
}

// TreeCPU is the CPU time of a server process and its children: its own,
// what its children that have ended used (the kernel adds it to the
// parent once reaped), and what its live children used so far. A
// PostgreSQL postmaster's backends are its children, so this is the whole
// server's CPU. Zero when pid is not running.
func TreeCPU(pid int) time.Duration {
	own, ok := procStat(pid)
	if !ok {
		return 0
	}
	total := own.utime + own.stime + own.cutime + own.cstime
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if st, ok := procStat(child); ok && st.ppid == int64(pid) {
			total += st.utime + st.stime
		}
	}
	return time.Duration(total) * time.Second / clockTick
}

type stat struct{ ppid, utime, stime, cutime, cstime int64 }

func procStat(pid int) (stat, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, false
	}
	// The fields after the command name, which is in parentheses:
	// state ppid ... utime(12) stime(13) cutime(14) cstime(15), 1-based
	// after the name.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return stat{}, false
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	return stat{ppid: n(1), utime: n(11), stime: n(12), cutime: n(13), cstime: n(14)}, true
}

// PIDFile is the process id in the first line of a pid file (a
// postmaster.pid, or scripts/services.sh's pulsar.pid), or 0.
func PIDFile(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	return pid
}
