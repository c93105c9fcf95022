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
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clockTick = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTick
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
