package pipeline

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// tlsRecheck is how often a handshake looks at the files again.
const tlsRecheck = time.Second

// tlsFiles serves the listener's certificate and client CAs from their
// files, read again when a file's size or modification time changes, so
// a renewed certificate takes effect without a restart. A file that no
// longer loads keeps the last good one (and is logged).
type tlsFiles struct {
	cfg TLSConfig
	log *slog.Logger

	mu      sync.Mutex
	checked time.Time
	stamps  [3]fileStamp // cert, key, client CA
	current *tls.Config
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

func newTLSFiles(cfg TLSConfig, log *slog.Logger) (*tlsFiles, error) {
	f := &tlsFiles{cfg: cfg, log: log}
	stamps, err := f.stat()
	if err != nil {
		return nil, err
	}
	conf, err := f.load()
	if err != nil {
		return nil, err
	}
	f.stamps, f.current, f.checked = stamps, conf, time.Now()
	return f, nil
}

// config is the listener's tls.Config: each handshake gets the current
// files' configuration.
func (f *tlsFiles) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.get(), nil
		},
	}
}

func (f *tlsFiles) get() *tls.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) < tlsRecheck {
		return f.current
	}
	f.checked = time.Now()
	stamps, err := f.stat()
	if err != nil || stamps == f.stamps {
		if err != nil {
			f.log.Warn("tls: keeping the certificate loaded before", "err", err)
		}
		return f.current
	}
	conf, err := f.load()
	if err != nil {
		// A renewal writes cert and key one after the other: the pair may
		// not match for a moment. The stamps stay, so the next check retries.
		f.log.Warn("tls: keeping the certificate loaded before", "err", err)
		return f.current
	}
	f.stamps, f.current = stamps, conf
	f.log.Info("tls: certificate files reloaded", "cert_file", f.cfg.CertFile)
	return conf
}

func (f *tlsFiles) stat() ([3]fileStamp, error) {
	var out [3]fileStamp
	for i, name := range []string{f.cfg.CertFile, f.cfg.KeyFile, f.cfg.ClientCAFile} {
		if name == "" {
			continue
		}
		st, err := os.Stat(name)
		if err != nil {
			return out, fmt.Errorf("tls: %w", err)
		}
		out[i] = fileStamp{size: st.Size(), modTime: st.ModTime()}
	}
	return out, nil
}

func (f *tlsFiles) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.cfg.CertFile, f.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load cert_file %s and key_file %s: %w", f.cfg.CertFile, f.cfg.KeyFile, err)
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"}, // HTTP/2 through ALPN: gRPC clients need it
	}
	if f.cfg.MinVersion == "1.3" {
		conf.MinVersion = tls.VersionTLS13
	}
	if f.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(f.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls: client_ca_file " + f.cfg.ClientCAFile + " has no PEM certificate")
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		if f.cfg.ClientAuth == "optional" {
			conf.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return conf, nil
}
