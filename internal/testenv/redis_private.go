package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// PrivateRedis starts a redis-server of its own for the test, on a free
// port of 127.0.0.1, without persistence, with the extra arguments (for
// example "--proto-max-bulk-len", "1mb"), and returns its URL. Tests that
// reconfigure the server (CONFIG SET, CLIENT PAUSE, REPLICAOF) use it
// instead of the shared one. It needs the shared one's variable, like the
// other tests: redis-server is the test command's. The server stops when
// the test ends.
func PrivateRedis(t testing.TB, args ...string) string {
	t.Helper()
	need(t, envRedisURL)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	dir, _ := privateDir(t, "redis-", "")
	port := freePort(t)
	srv := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no"}, args...)...)
	logFile := filepath.Join(dir, "redis.log")
	exited := startServer(t, srv, logFile, nil, syscall.SIGTERM)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return url
		}
		select {
		case <-exited:
			err = fmt.Errorf("the server exited (%w)", err)
		default:
			if time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				continue
			}
		}
		log, _ := os.ReadFile(logFile)
		t.Fatalf("private redis-server did not answer: %v\n%s", err, log)
	}
}
