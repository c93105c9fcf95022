package router

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/interpreter"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/schema"
)

// ErrRoute: a route that cannot be created or no longer fits its subject's schema.
var ErrRoute = errors.New("route")

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

// RouteStore persists routes; schema.Store implements it.
type RouteStore interface {
	Routes(ctx context.Context) ([]schema.RouteRow, error)
	CreateRoute(ctx context.Context, r schema.RouteRow) error
	DeleteRoute(ctx context.Context, name string) error
}

// Routes is the route table, read from the store and refreshed every
// refresh interval so that every replica sees changes.
type Routes struct {
	store   RouteStore
	topics  Topics
	refresh time.Duration

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
	key     []protoreflect.FieldDescriptor
}

// NewRoutes returns a route table over store.
func NewRoutes(store RouteStore, topics Topics, refresh time.Duration) *Routes {
	if refresh <= 0 {
		refresh = 2 * time.Second
	}
	return &Routes{store: store, topics: topics, refresh: refresh}
}

var routeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Create checks a route against the subject's latest schema (the filter
// must type-check to a bool, the key must name a scalar field) and stores it.
func (r *Routes) Create(ctx context.Context, route Route, latest *schema.Schema) (Route, error) {
	if !routeName.MatchString(route.Name) {
		return Route{}, fmt.Errorf("%w: name %q: use letters, digits, '.', '_' and '-' (at most 100)", ErrRoute, route.Name)
	}
	if route.Topic == "" {
		return Route{}, fmt.Errorf("%w %q: topic is required", ErrRoute, route.Name)
	}
	full, err := r.topics.TopicName(route.Topic)
	if err != nil {
		return Route{}, fmt.Errorf("%w %q: topic %q: %v", ErrRoute, route.Name, route.Topic, err)
	}
	route.Topic = full
	if checker, ok := r.topics.(bus.TopicChecker); ok {
		if err := checker.CheckTopic(ctx, full); err != nil {
			if errors.Is(err, bus.ErrUnavailable) {
				return Route{}, fmt.Errorf("route %q: check topic %s: %w", route.Name, full, err)
			}
			return Route{}, fmt.Errorf("%w %q: topic %q: %v", ErrRoute, route.Name, route.Topic, err)
		}
	}
	if _, err := compileRoute(route, latest.Message); err != nil {
		return Route{}, err
	}
	if err := r.store.CreateRoute(ctx, schema.RouteRow{Name: route.Name, Subject: route.Subject, Topic: route.Topic, Filter: route.Filter, Key: route.Key}); err != nil {
		return Route{}, err
	}
	r.invalidate()
	return route, nil
}

// Delete removes a route.
func (r *Routes) Delete(ctx context.Context, name string) error {
	if err := r.store.DeleteRoute(ctx, name); err != nil {
		return err
	}
	r.invalidate()
	return nil
}

// List returns the routes of subject, or all routes when subject is empty.
func (r *Routes) List(ctx context.Context, subject string) ([]Route, error) {
	rows, err := r.store.Routes(ctx)
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, row := range rows {
		if subject == "" || row.Subject == subject {
			out = append(out, Route{Name: row.Name, Subject: row.Subject, Topic: row.Topic, Filter: row.Filter, Key: row.Key})
		}
	}
	return out, nil
}

func (r *Routes) invalidate() {
	r.mu.Lock()
	r.loaded = time.Time{}
	r.mu.Unlock()
}

func (r *Routes) forSubject(ctx context.Context, subject string) ([]Route, error) {
	// Hot path: every event reads the table; only a stale one takes the
	// write lock, and one reader reloads it for all.
	r.mu.RLock()
	table, fresh := r.bySubject, time.Since(r.loaded) <= r.refresh
	r.mu.RUnlock()
	if fresh && table != nil {
		return table[subject], nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.loaded) > r.refresh || r.bySubject == nil {
		all, err := r.List(ctx, "")
		if err != nil {
			if r.bySubject == nil {
				return nil, err
			}
			// Keep routing with the table we have and try the store again
			// after the next interval, not on every event.
			r.loaded = time.Now()
		} else {
			r.bySubject = map[string][]Route{}
			for _, route := range all {
				r.bySubject[route.Subject] = append(r.bySubject[route.Subject], route)
			}
			r.loaded = time.Now()
		}
	}
	return r.bySubject[subject], nil
}

// Match returns the topics msg goes to. A subject without routes goes to
// its default topic, named after the subject.
func (r *Routes) Match(ctx context.Context, subject string, sc *schema.Schema, msg protoreflect.Message) ([]Target, error) {
	routes, err := r.forSubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	if len(routes) == 0 {
		topic, err := r.topics.TopicName(subject)
		if err != nil {
			return nil, fmt.Errorf("%w: default topic for subject %q: %v", ErrRoute, subject, err)
		}
		return []Target{{Topic: topic}}, nil
	}
	var out []Target
	for _, route := range routes {
		key := programKey{route: route, schemaID: sc.ID}
		c, ok := r.programs.Load(key)
		if !ok {
			compiled, err := compileRoute(route, sc.Message)
			if err != nil {
				return nil, fmt.Errorf("schema %d: %w", sc.ID, err)
			}
			c, _ = r.programs.LoadOrStore(key, compiled)
		}
		cr := c.(*compiledRoute)
		if cr.program != nil {
			val, _, err := cr.program.Eval(eventActivation{msg.Interface()})
			if err != nil {
				return nil, fmt.Errorf("%w %q: filter failed on this event: %v", ErrRoute, route.Name, err)
			}
			if match, ok := val.Value().(bool); !ok || !match {
				continue
			}
		}
		out = append(out, Target{Topic: route.Topic, Key: keyValue(msg, cr.key)})
	}
	return out, nil
}

