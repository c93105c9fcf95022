package sink

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// faultProxy forwards TCP connections to a real database server and can
// cut them: while down it drops every open connection and closes new ones
// at once, which is what a sink sees when its database goes away.
type faultProxy struct {
	ln       net.Listener
	upstream string
	down     atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func startFaultProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(c, up)
		go pipe(up, c)
	}
}

// cut closes every open connection.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *faultProxy) setDown(down bool) {
	p.down.Store(down)
	if down {
		p.cut()
	}
}

// viaProxy rewrites a database URL to go through the proxy.
func viaProxy(t *testing.T, rawURL string) (string, *faultProxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startFaultProxy(t, u.Host)
	u.Host = p.addr()
	return u.String(), p
}

// TestF8DatabaseOutage: the database goes away for 30 s while events keep
// coming. The sink acknowledges nothing and dead-letters nothing while it
// is gone, the bus keeps accepting events, and the sink catches up fully
// when the database returns (docs/pitfalls.md E, B9).
func TestF8DatabaseOutage(t *testing.T) {
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{{"postgres", testenv.Postgres}, {"mysql", testenv.MySQL}} {
		t.Run(db.name, func(t *testing.T) {
			direct := db.url(t)
			b := openPulsar(t)
			proxied, proxy := viaProxy(t, direct)
			subject := uniqueName("outage")
			topic, err := b.TopicName(subject)
			if err != nil {
				t.Fatal(err)
			}
			schemas := newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 401, Message: md})
			name := uniqueName("outage")
			s, err := New(Config{Name: name, URL: proxied, Topics: []string{topic}, BatchSize: 100,
				FlushInterval: 20 * time.Millisecond, writeTimeout: 10 * time.Second}, b, schemas, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			check := openTestDialect(t, direct)
			table := sqlName(subject)
			stop := runSink(t, s)

			// Load: a steady stream of events for the whole test.
			load := startLoad(t, b, topic, subject, md)
			eventually(t, 60*time.Second, "rows flowing", func() (bool, string) {
				rows := countRowsIfExists(t, check, table)
				return rows > 200, fmt.Sprintf("rows=%d", rows)
			})

			proxy.setDown(true)
			t.Log("database down")
			// Let the in-flight batch fail, then take the baseline.
			eventually(t, 30*time.Second, "sink notices", func() (bool, string) {
				st := s.Status(context.Background())
				return st.State == StateStalled, fmt.Sprintf("%+v", st)
			})
			rowsAtDown := countRows(t, check, table)
			backlogAtDown := backlog(t, b, "sink-"+name, topic)
			publishedAtDown := load.published.Load()
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				st := s.Status(context.Background())
				if st.deadLettered != 0 {
					t.Fatalf("dead-lettered %d events during the outage", st.deadLettered)
				}
				if st.State != StateStalled {
					t.Fatalf("state %s during the outage, want stalled", st.State)
				}
				time.Sleep(500 * time.Millisecond) // sampling interval
			}
			if rows := countRows(t, check, table); rows != rowsAtDown {
				t.Errorf("rows changed during the outage: %d -> %d", rowsAtDown, rows)
			}
			backlogAtEnd := backlog(t, b, "sink-"+name, topic)
			publishedDuring := load.published.Load() - publishedAtDown
			if publishedDuring < 1000 {
				t.Errorf("only %d events accepted during the outage: the bus should keep accepting", publishedDuring)
			}
			// Nothing acknowledged: the backlog grew by what was published.
			if backlogAtEnd < backlogAtDown+publishedDuring/2 {
				t.Errorf("backlog %d -> %d while %d events were published: something was acknowledged", backlogAtDown, backlogAtEnd, publishedDuring)
			}
			if st := s.Status(context.Background()); st.LastError == "" {
				t.Errorf("no LastError during the outage: %+v", st)
			}

			proxy.setDown(false)
			t.Log("database back")
			time.Sleep(2 * time.Second) // load keeps running after the outage
			total := load.stop(t)
			eventually(t, 120*time.Second, "full catch-up", func() (bool, string) {
				rows := countRows(t, check, table)
				return rows == total, fmt.Sprintf("rows=%d of %d", rows, total)
			})
			eventually(t, 60*time.Second, "backlog drained", func() (bool, string) {
				n := backlog(t, b, "sink-"+name, topic)
				return n == 0, fmt.Sprintf("backlog=%d", n)
			})
			st := s.Status(context.Background())
			if st.deadLettered != 0 || st.State != stateRunning {
				t.Errorf("after the outage: %+v", st)
			}
			if r := metricRetries(s); r == 0 {
				t.Errorf("no retries counted")
			}
			if err := stop(); err != nil {
				t.Errorf("Run: %v", err)
			}
			assertExactRows(t, check, table, int(total))
		})
	}
}

// load publishes events at a steady pace (one per 5 ms: ids ev-<i>,
// keys k<i%11>, schema 401) until stopped.
type load struct {
	published atomic.Int64
	err       atomic.Value
	cancel    context.CancelFunc
	done      chan struct{}
}

func startLoad(t *testing.T, b bus.Bus, topic, subject string, md protoreflect.MessageDescriptor) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Not ctx: a publish cut short has an unknown outcome and
			// would spoil the count.
			pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := b.Publish(pctx, bus.Message{Topic: topic, Key: fmt.Sprintf("k%d", i%11),
				Payload:    marshal(t, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i))),
				Properties: map[string]string{bus.PropEventID: fmt.Sprintf("ev-%06d", i), bus.PropSchemaID: "401", bus.PropSubject: subject}})
			cancel()
			if err != nil {
				l.err.Store(err)
				return
			}
			l.published.Add(1)
		}
	}()
	t.Cleanup(func() { l.cancel(); <-l.done })
	return l
}

// stop ends the load and returns how many events the bus accepted.
func (l *load) stop(t *testing.T) int64 {
	t.Helper()
	l.cancel()
	<-l.done
	if err, _ := l.err.Load().(error); err != nil {
		t.Errorf("publishing failed during the test: %v", err)
	}
	return l.published.Load()
}

func backlog(t *testing.T, b bus.Bus, subscription, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := b.Backlog(ctx, subscription, []string{topic})
	if err != nil {
		t.Fatalf("backlog: %v", err)
	}
	return n
}
