package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// lockFileName is the file in data_dir that one process at a time holds
// (an flock, released by the kernel when the process ends, also by a crash).
const lockFileName = "pipeline.lock"

// lockDataDir takes data_dir's lock when this config keeps anything there:
// the embedded JetStream's store, or a sqlite:// registry or sink file in
// it. Two processes on one JetStream store corrupt it, and two default
// sinks would write every event twice; so a second `serve` on the
// directory is refused at start, naming the process that holds it. It
// returns nil (no lock to release) when the directory is not used.
func lockDataDir(cfg *Config) (*flock.Flock, error) {
	if !usesDataDir(cfg) {
		return nil, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, lockFileName)
	lock := flock.New(path)
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock the data directory %s: %w", cfg.DataDir, err)
	}
	if !ok {
		holder := "another process"
		if raw, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
				holder = fmt.Sprintf("process %d", pid)
			}
		}
		return nil, fmt.Errorf("the data directory %s is in use: %s holds %s. Stop it, or give this pipeline its own --data-dir (data_dir, PIPELINE_DATA_DIR)", cfg.DataDir, holder, path)
	}
	// Who holds it, for the message above; the lock is on the file, not its text.
	_ = os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	return lock, nil
}

func usesDataDir(cfg *Config) bool {
	if cfg.Bus.Kind == "jetstream" && cfg.Bus.URL == "" {
		return true
	}
	inDir := func(rawURL string) bool {
		path, ok := strings.CutPrefix(rawURL, "sqlite://")
		if !ok {
			return false
		}
		path, _, _ = strings.Cut(path, "?")
		dir, err1 := filepath.Abs(cfg.DataDir)
		file, err2 := filepath.Abs(path)
		if err1 != nil || err2 != nil {
			return false
		}
		rel, err := filepath.Rel(dir, file)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	if inDir(cfg.Registry.URL) {
		return true
	}
	for _, s := range cfg.Sinks {
		if inDir(s.URL) {
			return true
		}
	}
	return false
}
