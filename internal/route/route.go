// Package route owns routes: which topics an accepted event goes to. Every
// event goes to its subject's own topic; a route adds a copy of the events
// of one subject that match a CEL filter on another topic, with a message
// key read from a field. A route never takes an event away from a sink
// that reads the subject. The package holds the route table
// (read from its store and refreshed so every replica sees changes), the
// CEL compilation and evaluation, and the routes table's SQL.
package route

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/schema"
)

// Errors the API edge maps to status codes. Both read "route ...".
var (
	// ErrInvalid: a route that cannot be created (bad name, topic, filter or key).
	ErrInvalid = errors.New("route")
	// ErrBroken: a stored route that does not fit an event or its schema.
	ErrBroken = errors.New("route")
	// ErrNotFound: no route of that name.
	ErrNotFound = errors.New("not found")
	// ErrExists: a route of that name exists already.
	ErrExists = errors.New("already exists")
)

// Route sends the events of a subject that match Filter to Topic.
type Route struct {
	Name    string
	Subject string
	Topic   string // full bus topic name
	Filter  string // CEL over `event`; empty matches all
	Key     string // field path whose value is the message key
}

// Target is one topic an event goes to, with its message key.
type Target struct {
	Topic string
	Key   string
}

// Store persists routes (SQLStore over the registry database).
type Store interface {
	List(ctx context.Context) ([]Route, error)
	Create(ctx context.Context, r Route) error
	Delete(ctx context.Context, name string) error
}

// Schemas finds the schema a new route is checked against: the subject's
// latest version (version 0).
type Schemas interface {
	Get(ctx context.Context, subject string, version int32) (*schema.Version, error)
}

// Topics turns short names into the bus's full topic names.
type Topics interface {
	TopicName(name string) (string, error)
}

// Readers tells which durable subscriptions read a topic (on the bus now,
// or about to be created for this process's sinks).
type Readers interface {
	ReadersOf(ctx context.Context, topic string) ([]string, error)
}

// Table is the route table, read from the store and refreshed every
// refresh interval so that every replica sees changes.
type Table struct {
	store   Store
	schemas Schemas
	topics  Topics
	readers Readers // nil: nobody to ask
	refresh time.Duration
	// eventBytes bounds an event's payload (WithMaxEventBytes); 0: not
	// known, and every filter's cost is tracked as it runs.
	eventBytes uint64

	mu        sync.RWMutex
	bySubject map[string][]Route
	loaded    time.Time

	programs sync.Map // programKey -> *compiledRoute
}

type programKey struct {
	route    Route
	schemaID int64
}

type compiledRoute struct {
	program cel.Program // nil when the route has no filter
	// tracked: the program counts its cost as it runs and stops at
	// MaxFilterCost; false when no event can make it cost that much.
	tracked bool
	key     []protoreflect.FieldDescriptor
}

// TableOption configures a Table.
type TableOption func(*Table)

// WithMaxEventBytes tells the table how large an event's payload can be
// (the router's limits.max_event_bytes). A filter whose estimated worst
// cost over events of that size is under a tenth of MaxFilterCost then
// runs without counting its cost step by step (cel.CostLimit's tracker was half of a filter's
// evaluation in a profile of the ingest path).
func WithMaxEventBytes(n int) TableOption {
	return func(t *Table) { t.eventBytes = uint64(max(n, 0)) }
}

// NewTable returns a route table over store; readers may be nil.
func NewTable(store Store, schemas Schemas, topics Topics, readers Readers, refresh time.Duration, opts ...TableOption) *Table {
	if refresh <= 0 {
		refresh = 2 * time.Second
	}
	t := &Table{store: store, schemas: schemas, topics: topics, readers: readers, refresh: refresh}
	for _, o := range opts {
		o(t)
	}
	return t
}

// ReadBy returns the subscriptions that read a route's topic, sorted.
func (t *Table) ReadBy(ctx context.Context, r Route) ([]string, error) {
	if t.readers == nil {
		return nil, nil
	}
	names, err := t.readers.ReadersOf(ctx, r.Topic)
	if err != nil {
		return nil, fmt.Errorf("route %q: subscriptions of %s: %w", r.Name, r.Topic, err)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

var routeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Create checks a route against the subject's latest schema (the filter
// must type-check to a bool, the key must name a scalar field) and stores it.
func (t *Table) Create(ctx context.Context, route Route) (Route, error) {
	// Name and sizes first: nothing of a malformed route is worth a lookup.
	if !routeName.MatchString(route.Name) {
		return Route{}, fmt.Errorf("%w: name %q: use letters, digits, '.', '_' and '-' (at most 100)", ErrInvalid, route.Name)
	}
	if len(route.Filter) > MaxFilterBytes {
		return Route{}, fmt.Errorf("%w %q: filter is %d bytes; at most %d", ErrInvalid, route.Name, len(route.Filter), MaxFilterBytes)
	}
	if len(route.Key) > 256 {
		return Route{}, fmt.Errorf("%w %q: key is %d bytes; at most 256", ErrInvalid, route.Name, len(route.Key))
	}
	latest, err := t.schemas.Get(ctx, route.Subject, 0)
	if err != nil {
		return Route{}, fmt.Errorf("route %q: %w", route.Name, err)
	}
	if route.Topic == "" {
		return Route{}, fmt.Errorf("%w %q: topic is required", ErrInvalid, route.Name)
	}
	full, err := t.topics.TopicName(route.Topic)
	if err != nil {
		return Route{}, fmt.Errorf("%w %q: topic %q: %v", ErrInvalid, route.Name, route.Topic, err)
	}
	route.Topic = full
	if checker, ok := t.topics.(bus.TopicChecker); ok {
		if err := checker.CheckTopic(ctx, full); err != nil {
			if errors.Is(err, bus.ErrUnavailable) {
				return Route{}, fmt.Errorf("route %q: check topic %s: %w", route.Name, full, err)
			}
			return Route{}, fmt.Errorf("%w %q: topic %q: %v", ErrInvalid, route.Name, route.Topic, err)
		}
	}
	if _, err := compileRoute(route, latest.Schema.Message, ErrInvalid, t.eventBytes); err != nil {
		return Route{}, err
	}
	if err := t.store.Create(ctx, route); err != nil {
		return Route{}, err
	}
	t.invalidate()
	return route, nil
}

// Delete removes a route.
func (t *Table) Delete(ctx context.Context, name string) error {
	if err := t.store.Delete(ctx, name); err != nil {
		return err
	}
	t.invalidate()
	return nil
}

// List returns the routes of subject, or all routes when subject is empty.
func (t *Table) List(ctx context.Context, subject string) ([]Route, error) {
	all, err := t.store.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, r := range all {
		if subject == "" || r.Subject == subject {
			out = append(out, r)
		}
	}
	return out, nil
}

func (t *Table) invalidate() {
	t.mu.Lock()
	t.loaded = time.Time{}
	t.mu.Unlock()
}

func (t *Table) forSubject(ctx context.Context, subject string) ([]Route, error) {
	// Hot path: every event reads the table; only a stale one takes the
	// write lock, and one reader reloads it for all.
	t.mu.RLock()
	table, fresh := t.bySubject, time.Since(t.loaded) <= t.refresh
	t.mu.RUnlock()
	if fresh && table != nil {
		return table[subject], nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(t.loaded) > t.refresh || t.bySubject == nil {
		all, err := t.store.List(ctx)
		if err != nil {
			if t.bySubject == nil {
				return nil, err
			}
			// Keep routing with the table we have and try the store again
			// after the next interval, not on every event.
			t.loaded = time.Now()
		} else {
			t.bySubject = map[string][]Route{}
			for _, r := range all {
				t.bySubject[r.Subject] = append(t.bySubject[r.Subject], r)
			}
			t.loaded = time.Now()
		}
	}
	return t.bySubject[subject], nil
}

// Match returns the topics msg goes to: always the subject's own topic
// (so every accepted event is where a sink naming the subject reads it,
// whatever the routes say), and a copy on the topic of every route whose
// filter matches, with that route's key.
func (t *Table) Match(ctx context.Context, subject string, sc *schema.Schema, msg protoreflect.Message) ([]Target, error) {
	routes, err := t.forSubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	own, err := t.topics.TopicName(subject)
	if err != nil {
		return nil, fmt.Errorf("%w: default topic for subject %q: %v", ErrBroken, subject, err)
	}
	out := []Target{{Topic: own}}
	for _, r := range routes {
		key := programKey{route: r, schemaID: sc.ID}
		c, ok := t.programs.Load(key)
		if !ok {
			compiled, err := compileRoute(r, sc.Message, ErrBroken, t.eventBytes)
			if err != nil {
				return nil, fmt.Errorf("schema %d: %w", sc.ID, err)
			}
			c, _ = t.programs.LoadOrStore(key, compiled)
		}
		cr := c.(*compiledRoute)
		if cr.program != nil {
			val, _, err := cr.program.Eval(eventActivation{msg.Interface()})
			if err != nil {
				return nil, fmt.Errorf("%w %q: filter failed on this event: %v", ErrBroken, r.Name, err)
			}
			if match, ok := val.Value().(bool); !ok || !match {
				continue
			}
		}
		if r.Topic == own && r.Key == "" {
			continue // the event is there already
		}
		out = append(out, Target{Topic: r.Topic, Key: keyValue(msg, cr.key)})
	}
	return out, nil
}
