package pipeline_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	_ "modernc.org/sqlite"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	server "github.com/schemagate/pipeline/internal/pipeline"
	"github.com/schemagate/pipeline/sdk/go/pipeline"
)

// serverURL and serverDataDir are the one in-process pipeline (embedded
// defaults: JetStream, SQLite registry and sink) that the package's tests
// and examples share; "orders" is registered on it.
var (
	serverURL     string
	serverDataDir string
)

// childEnv makes the test binary a pipeline server (for the kill test):
// PIPELINE_SDK_TEST_SERVE=<data dir>,<addr>.
const childEnv = "PIPELINE_SDK_TEST_SERVE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		dir, addr, _ := strings.Cut(spec, ",")
		if err := serve(dir, addr); err != nil {
			fmt.Fprintln(os.Stderr, "child server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pipeline-sdk-go-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := server.LoadConfig("", func(c *server.Config) { c.DataDir = dir })
	if err != nil {
		log.Fatal(err)
	}
	s, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	serverURL, serverDataDir = "http://"+ln.Addr().String(), dir
	if _, err := register(serverURL, "orders"); err != nil {
		log.Fatal(err)
	}
	code := m.Run()
	cancel()
	<-served
	return code
}

// startServer runs a pipeline of the test's own in-process (embedded
// defaults, changed by mod) and returns its URL.
func startServer(t *testing.T, mod func(*server.Config)) string {
	t.Helper()
	cfg, err := server.LoadConfig("", func(c *server.Config) {
		c.DataDir = t.TempDir()
		mod(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })
	return "http://" + ln.Addr().String()
}

// serve runs a pipeline on dir and addr until SIGTERM (or SIGKILL).
func serve(dir, addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg, err := server.LoadConfig("", func(c *server.Config) { c.DataDir, c.Addr = dir, addr })
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// register registers sdk/testdata/order.proto under subject and returns
// OrderCreated's descriptor, read back from the server's compiled schema
// (what generated code would hold).
func register(base, subject string) (protoreflect.MessageDescriptor, error) {
	src, err := os.ReadFile("../../testdata/order.proto")
	if err != nil {
		return nil, err
	}
	c, err := pipeline.NewClient(base)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	reg, err := c.Schema.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: string(src)}},
	}))
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", subject, err)
	}
	got, err := c.Schema.GetSchema(ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{SchemaId: reg.Msg.GetSchemaId()}))
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(got.Msg.GetSchema().GetFileDescriptorSet(), &set); err != nil {
		return nil, err
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName("shop.v1.OrderCreated")
	if err != nil {
		return nil, err
	}
	return d.(protoreflect.MessageDescriptor), nil
}

// order builds an OrderCreated message object.
func order(md protoreflect.MessageDescriptor, id string, amount int64, country string) proto.Message {
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().ByName("order_id"), protoreflect.ValueOfString(id))
	m.Set(md.Fields().ByName("amount_cents"), protoreflect.ValueOfInt64(amount))
	m.Set(md.Fields().ByName("country"), protoreflect.ValueOfString(country))
	return m
}

var subjectSeq atomic.Int64

// newSubject registers the order schema under a fresh subject (its own
// table in the sink).
func newSubject(t *testing.T, base string) (string, protoreflect.MessageDescriptor) {
	t.Helper()
	subject := fmt.Sprintf("%s_%d", strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())), subjectSeq.Add(1))
	md, err := register(base, subject)
	if err != nil {
		t.Fatal(err)
	}
	return subject, md
}

// sinkDB opens the SQLite sink of a data dir for reading.
func sinkDB(t *testing.T, dataDir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "events.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitFor polls check until it returns nil or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %v", what, err)
}

// child is a pipeline server in another process, to be killed.
type child struct {
	t    *testing.T
	dir  string
	addr string
	cmd  *exec.Cmd
}

func startChild(t *testing.T, dir, addr string) *child {
	t.Helper()
	c := &child{t: t, dir: dir, addr: addr}
	c.start()
	t.Cleanup(func() {
		if c.cmd != nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	return c
}

func (c *child) start() {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+c.dir+","+c.addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmd = cmd
	waitFor(c.t, 60*time.Second, "the child server's /healthz", func() error {
		resp, err := http.Get("http://" + c.addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// kill ends the child with SIGKILL: no graceful anything.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	_ = c.cmd.Wait()
	c.cmd = nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
