package route

import (
	"fmt"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	"cel.dev/cel-go/interpreter"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// eventActivation binds `event` for a filter without the map a
// map[string]any activation would allocate per evaluation.
type eventActivation struct{ event any }

func (a eventActivation) ResolveName(name string) (any, bool) {
	if name == "event" {
		return a.event, true
	}
	return nil, false
}

func (eventActivation) Parent() interpreter.Activation { return nil }

// MaxFilterCost bounds what evaluating a filter on one event may cost, in
// CEL's cost units (about one per operation; a million is some tens of
// milliseconds). Past it the evaluation stops and the event is refused
// (ErrBroken: the route does not fit such events), so no filter can make
// one event cost seconds of CPU.
const MaxFilterCost = 1_000_000

// untrackedFilterCost is the worst-case estimate under which a filter runs
// without counting its cost: a tenth of MaxFilterCost. CEL's static
// estimate is close to, not exactly, an upper bound (FuzzRouteFilter saw
// a field of a google.protobuf.Struct cost 9 against an estimate of 8);
// the margin keeps such a filter far from the limit it is no longer
// stopped at, and FuzzRouteFilter checks the margin holds.
const untrackedFilterCost = MaxFilterCost / 10

// MaxFilterBytes bounds a filter's source: compiling it is paid once per
// route and schema, but still grows with its length.
const MaxFilterBytes = 4096

// filterEnv is the CEL environment of filters over messages of md: the
// message's types and the variable `event`.
func filterEnv(md protoreflect.MessageDescriptor) (*cel.Env, error) {
	return cel.NewEnv(
		cel.Types(dynamicpb.NewMessage(md)),
		cel.Variable("event", cel.ObjectType(string(md.FullName()))),
	)
}

// eventSizes bounds every list, map, string and bytes value of an event,
// and so every size CEL's cost estimate asks for, by the largest payload
// an event may have: a value of the event holds at most that many bytes
// or elements (each element takes at least a byte on the wire, and a
// JSON payload, bounded the same way, at least one character).
type eventSizes struct{ max uint64 }

func (e eventSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: e.max}
}

func (eventSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// compileRoute type-checks the filter and resolves the key path against md;
// its errors wrap sentinel (ErrInvalid when creating, ErrBroken when routing).
// eventBytes bounds an event's payload (0: unknown).
func compileRoute(route Route, md protoreflect.MessageDescriptor, sentinel error, eventBytes uint64) (*compiledRoute, error) {
	out := &compiledRoute{}
	if route.Filter != "" {
		env, err := filterEnv(md)
		if err != nil {
			return nil, fmt.Errorf("%w %q: CEL environment: %v", sentinel, route.Name, err)
		}
		ast, iss := env.Compile(route.Filter)
		if iss.Err() != nil {
			return nil, fmt.Errorf("%w %q: filter does not type-check against %s: %v", sentinel, route.Name, md.FullName(), iss.Err())
		}
		if ast.OutputType() != cel.BoolType {
			return nil, fmt.Errorf("%w %q: filter must be a bool expression, not %s", sentinel, route.Name, ast.OutputType())
		}
		// A filter may nest comprehensions over the event's lists: its cost
		// per event is bounded at evaluation, where the lists' sizes are
		// known, unless CEL's worst-case estimate over the largest event
		// is far within the bound (most filters: comparisons of fields;
		// untrackedFilterCost), which spares the tracker's work on every
		// step.
		out.tracked = true
		if eventBytes > 0 {
			if est, err := env.EstimateCost(ast, eventSizes{max: eventBytes}); err == nil && est.Max <= untrackedFilterCost {
				out.tracked = false
			}
		}
		if out.tracked {
			out.program, err = env.Program(ast, cel.CostLimit(MaxFilterCost))
		} else {
			out.program, err = env.Program(ast)
		}
		if err != nil {
			return nil, fmt.Errorf("%w %q: filter: %v", sentinel, route.Name, err)
		}
	}
	if route.Key != "" {
		cur := md
		for i, part := range strings.Split(route.Key, ".") {
			fd := cur.Fields().ByName(protoreflect.Name(part))
			if fd == nil {
				return nil, fmt.Errorf("%w %q: key %q: %s has no field %q", sentinel, route.Name, route.Key, cur.FullName(), part)
			}
			if fd.IsList() || fd.IsMap() {
				return nil, fmt.Errorf("%w %q: key %q: field %s is repeated", sentinel, route.Name, route.Key, fd.FullName())
			}
			out.key = append(out.key, fd)
			last := i == len(strings.Split(route.Key, "."))-1
			if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
				if last {
					return nil, fmt.Errorf("%w %q: key %q: field %s is a message, not a scalar", sentinel, route.Name, route.Key, fd.FullName())
				}
				cur = fd.Message()
			} else if !last {
				return nil, fmt.Errorf("%w %q: key %q: field %s is a scalar with no field %q", sentinel, route.Name, route.Key, fd.FullName(), strings.Split(route.Key, ".")[i+1])
			}
		}
	}
	return out, nil
}

// keyValue reads the key path from msg as a string ("" when unset). The
// string is a copy: msg may live in memory that is recycled after routing.
func keyValue(msg protoreflect.Message, path []protoreflect.FieldDescriptor) string {
	if len(path) == 0 {
		return ""
	}
	cur := msg
	for _, fd := range path[:len(path)-1] {
		if !cur.Has(fd) {
			return ""
		}
		cur = cur.Get(fd).Message()
	}
	fd := path[len(path)-1]
	v := cur.Get(fd)
	switch fd.Kind() {
	case protoreflect.StringKind:
		return strings.Clone(v.String())
	case protoreflect.BytesKind:
		return string(v.Bytes())
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	default:
		return strconv.FormatInt(v.Int(), 10)
	}
}
