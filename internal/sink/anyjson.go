package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// google.protobuf.Any in JSON columns (issue 13).
//
// protojson writes an Any as the JSON of the message it holds, which it
// finds by the type URL in a resolver; the default resolver knows only
// the types compiled into this binary, so an event's own types failed and
// the event was dead-lettered. Here the resolver is the event's schema:
// its files and their imports (and the well-known types). An Any whose
// type is not there, or whose value does not decode as that type, is
// written as {"@type": "<its type URL>", "value": "<base64 of its value>"}
// so that nothing is lost and no event is refused for it. That works at any
// depth: in nested messages, lists, maps, and messages inside resolved Anys.

const anyFullName protoreflect.FullName = "google.protobuf.Any"

// anyResolver resolves type URLs to the messages of one schema.
type anyResolver struct {
	types *protoregistry.Types
}

// newAnyResolver returns the resolver over md's file and its imports.
func newAnyResolver(md protoreflect.MessageDescriptor) *anyResolver {
	r := &anyResolver{types: new(protoregistry.Types)}
	seen := map[string]bool{}
	var addFile func(f protoreflect.FileDescriptor)
	var addMessages func(ms protoreflect.MessageDescriptors)
	addMessages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if !m.IsMapEntry() {
				// A duplicate name cannot happen within one compiled
				// schema; the first registration wins if it does.
				_ = r.types.RegisterMessage(dynamicpb.NewMessageType(m))
			}
			addMessages(m.Messages())
		}
	}
	addFile = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		addMessages(f.Messages())
		for i := range f.Imports().Len() {
			addFile(f.Imports().Get(i).FileDescriptor)
		}
	}
	addFile(md.ParentFile())
	return r
}

// find is the message type of url in the schema, or a well-known type.
func (r *anyResolver) find(url string) (protoreflect.MessageType, bool) {
	if mt, err := r.types.FindMessageByURL(url); err == nil {
		return mt, true
	}
	name := url
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		name = url[i+1:]
	}
	if strings.HasPrefix(name, "google.protobuf.") {
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err == nil {
			return mt, true
		}
	}
	return nil, false
}

// unresolvedAny is the message an unresolvable Any's value is wrapped in,
// so that protojson writes it as {"@type": url, "value": base64}.
var unresolvedAny = func() protoreflect.MessageType {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("schemagate/sink/unresolved_any.proto"),
		Package: proto.String("schemagate.sink"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("UnresolvedAny"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name:     proto.String("value"),
				JsonName: proto.String("value"),
				Number:   proto.Int32(1),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum(),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		panic(fmt.Sprintf("sink: build UnresolvedAny: %v", err)) // a constant descriptor: cannot fail
	}
	return dynamicpb.NewMessageType(fd.Messages().Get(0))
}()

// marshalResolver is what one marshal resolves with: the schema's types,
// except the URLs rewritten as raw (and unknown ones), which are
// unresolvedAny. The choice is per URL, not per Any: protojson asks the
// resolver by URL.
type marshalResolver struct {
	r      *anyResolver
	raw    map[string]bool
	allRaw bool
}

func (m *marshalResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if !m.allRaw && !m.raw[url] {
		if mt, ok := m.r.find(url); ok {
			return mt, nil
		}
	}
	return unresolvedAny, nil
}

func (m *marshalResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, ok := m.r.find(string(name)); ok {
		return mt, nil
	}
	return nil, protoregistry.NotFound
}

func (m *marshalResolver) FindExtensionByName(protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}

func (m *marshalResolver) FindExtensionByNumber(protoreflect.FullName, protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}

// errRawURL restarts a marshal: a URL that resolves failed to decode (or
// nests deeper than maxAnyDepth), and every Any with it is written raw.
type errRawURL struct{ url string }

func (e *errRawURL) Error() string { return "type URL " + e.url + " written raw" }

// Bounds on the work one hostile value can cause: Anys resolved inside
// Anys, and marshals started again for another raw URL. Past them the
// value's Anys are written raw, which costs its size once.
const (
	maxAnyDepth    = 32
	maxAnyRestarts = 8
)

// marshal is protojson of m with the schema's types resolved in Anys.
func (r *anyResolver) marshal(m protoreflect.Message) ([]byte, error) {
	payload, err := proto.Marshal(m.Interface())
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Descriptor().FullName(), err)
	}
	mr := &marshalResolver{r: r, raw: map[string]bool{}}
	for restarts := 0; ; restarts++ {
		// A mutable copy (the event's message may be read-only hyperpb).
		dyn := dynamicpb.NewMessage(m.Descriptor())
		if err := proto.Unmarshal(payload, dyn); err != nil {
			return nil, fmt.Errorf("decode %s: %w", m.Descriptor().FullName(), err)
		}
		_, err := mr.rewriteMessage(dyn, 0)
		var again *errRawURL
		if errors.As(err, &again) {
			mr.raw[again.url] = true
			mr.allRaw = restarts >= maxAnyRestarts
			continue
		}
		if err != nil {
			return nil, err
		}
		raw, err := protojson.MarshalOptions{UseProtoNames: true, Resolver: mr}.Marshal(dyn)
		if err != nil {
			return nil, fmt.Errorf("encode as JSON: %w", err)
		}
		return raw, nil
	}
}

// rewrite replaces the value of every Any in m that is to be written raw
// by an unresolvedAny holding it; depth counts the Anys m is inside.
func (mr *marshalResolver) rewrite(m protoreflect.Message, depth int) (changed bool, err error) {
	visit := func(v protoreflect.Value) bool {
		var c bool
		c, err = mr.rewriteMessage(v.Message(), depth)
		changed = changed || c
		return err == nil
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				if !visit(l.Get(i)) {
					return false
				}
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { return visit(mv) })
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			visit(v)
		}
		return err == nil
	})
	return changed, err
}

func (mr *marshalResolver) rewriteMessage(m protoreflect.Message, depth int) (bool, error) {
	if m.Descriptor().FullName() != anyFullName {
		return mr.rewrite(m, depth)
	}
	fields := m.Descriptor().Fields()
	urlField, valueField := fields.ByNumber(1), fields.ByNumber(2)
	url := m.Get(urlField).String()
	value := m.Get(valueField).Bytes()
	if url == "" {
		return false, nil // protojson writes {} for an empty Any, and refuses a value without a type
	}
	if !mr.allRaw && !mr.raw[url] {
		if mt, ok := mr.r.find(url); ok {
			if depth >= maxAnyDepth {
				return false, &errRawURL{url: url}
			}
			inner := mt.New()
			if err := proto.Unmarshal(value, inner.Interface()); err != nil {
				return false, &errRawURL{url: url}
			}
			changed, err := mr.rewrite(inner, depth+1)
			if err != nil || !changed {
				return false, err
			}
			// Inner Anys were rewritten: store the inner message again.
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner.Interface())
			if err != nil {
				return false, fmt.Errorf("encode %s: %w", mt.Descriptor().FullName(), err)
			}
			m.Set(valueField, protoreflect.ValueOfBytes(b))
			return true, nil
		}
	}
	wrapped := unresolvedAny.New()
	wrapped.Set(wrapped.Descriptor().Fields().ByNumber(1), protoreflect.ValueOfBytes(value))
	b, err := proto.Marshal(wrapped.Interface())
	if err != nil {
		return false, fmt.Errorf("encode raw Any: %w", err)
	}
	m.Set(valueField, protoreflect.ValueOfBytes(b))
	return true, nil
}

// compactJSON appends raw, compacted, to b: protojson randomises white
// space, and stored JSON should be stable.
func compactJSON(b, raw []byte) ([]byte, error) {
	out := bytes.NewBuffer(b)
	if err := json.Compact(out, raw); err != nil {
		return nil, fmt.Errorf("compact JSON: %w", err)
	}
	return out.Bytes(), nil
}

// containsAny reports whether messages of md can hold an Any, at any
// depth: only their JSON goes through anyResolver.
func containsAny(md protoreflect.MessageDescriptor) bool {
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor) bool
	walk = func(md protoreflect.MessageDescriptor) bool {
		if md.FullName() == anyFullName {
			return true
		}
		if seen[md.FullName()] {
			return false
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if fd.Message() != nil && walk(fd.Message()) {
				return true
			}
		}
		return false
	}
	return walk(md)
}
