package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	// Registers buf/validate/validate.proto in protoregistry.GlobalFiles so
	// schemas can import it without uploading it.
	_ "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Limits on what a schema may weigh; anything larger is refused before the
// compiler sees it.
const (
	MaxSourceBytes = 4 << 20 // all source files of one schema together
	maxFiles       = 256
)

// SourceFile is one .proto file of a schema.
type SourceFile struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Input is what a client submits: source files or a serialized
// FileDescriptorSet, and the full name of the event message.
type Input struct {
	Files             []SourceFile
	FileDescriptorSet []byte
	Message           string
	References        []Reference
}

// Reference makes a file registered under another subject importable under Name.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int32  `json:"version"`
}

// Problem is one compiler error with its position.
type Problem struct {
	File    string
	Line    int
	Column  int
	Message string
}

// CompileError lists every problem found in a schema that does not compile.
type CompileError struct{ Problems []Problem }

func (e *CompileError) Error() string {
	var b strings.Builder
	b.WriteString("schema does not compile:")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString(";")
		}
		if p.File != "" {
			fmt.Fprintf(&b, " %s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
		} else {
			b.WriteString(" " + p.Message)
		}
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *CompileError) Unwrap() error { return ErrInvalid }

// compiled is a schema turned into linked descriptors.
type compiled struct {
	// Own are the schema's own files (not imports from elsewhere), sorted by path.
	Own []protoreflect.FileDescriptor
	// Message is the event message.
	Message protoreflect.MessageDescriptor
	// DescriptorSet holds Own and every file they import, dependencies
	// first, so the schema can be rebuilt from it alone.
	DescriptorSet *descriptorpb.FileDescriptorSet
	// Fingerprint identifies the content after normalisation: formatting,
	// comments and file order do not change it.
	Fingerprint string
}

// resolvedReference is a Reference with the files of the referenced version.
type resolvedReference struct {
	Reference
	SchemaID int64
	Files    *protoregistry.Files
	File     protoreflect.FileDescriptor
}

// globalImport finds the files every schema may import without uploading
// them: the well-known types and protovalidate's rules.
func globalImport(name string) (protoreflect.FileDescriptor, bool) {
	if !strings.HasPrefix(name, "google/protobuf/") && !strings.HasPrefix(name, "buf/validate/") {
		return nil, false
	}
	fd, err := protoregistry.GlobalFiles.FindFileByPath(name)
	if err != nil {
		return nil, false
	}
	return fd, true
}

// compile turns an Input into descriptors. refs are the already resolved references.
func compile(ctx context.Context, in Input, refs []resolvedReference) (*compiled, error) {
	if in.Message == "" {
		return nil, fmt.Errorf("%w: message is required (the full name of the event message, e.g. shop.v1.OrderCreated)", ErrInvalid)
	}
	if !protoreflect.FullName(in.Message).IsValid() {
		return nil, fmt.Errorf("%w: message %q is not a valid full name", ErrInvalid, in.Message)
	}
	var own []protoreflect.FileDescriptor
	var err error
	switch {
	case len(in.Files) > 0 && len(in.FileDescriptorSet) > 0:
		return nil, fmt.Errorf("%w: give either files or file_descriptor_set, not both", ErrInvalid)
	case len(in.Files) > 0:
		own, err = compileSources(ctx, in.Files, refs)
	case len(in.FileDescriptorSet) > 0:
		own, err = linkDescriptorSet(in.FileDescriptorSet, refs)
	default:
		return nil, fmt.Errorf("%w: a schema needs files or a file_descriptor_set", ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(own, func(i, j int) bool { return own[i].Path() < own[j].Path() })

	var msg protoreflect.MessageDescriptor
	for _, fd := range own {
		if d := findMessage(fd, protoreflect.FullName(in.Message)); d != nil {
			msg = d
			break
		}
	}
	if msg == nil {
		return nil, fmt.Errorf("%w: message %q is not defined in the schema's files (%s)", ErrInvalid, in.Message, strings.Join(paths(own), ", "))
	}
	return &compiled{
		Own:           own,
		Message:       msg,
		DescriptorSet: descriptorSet(own),
		Fingerprint:   fingerprint(own, in.Message, refs),
	}, nil
}

func findMessage(fd protoreflect.FileDescriptor, name protoreflect.FullName) protoreflect.MessageDescriptor {
	var walk func(protoreflect.MessageDescriptors) protoreflect.MessageDescriptor
	walk = func(ms protoreflect.MessageDescriptors) protoreflect.MessageDescriptor {
		for i := 0; i < ms.Len(); i++ {
			m := ms.Get(i)
			if m.FullName() == name {
				return m
			}
			if d := walk(m.Messages()); d != nil {
				return d
			}
		}
		return nil
	}
	return walk(fd.Messages())
}

func paths(fds []protoreflect.FileDescriptor) []string {
	out := make([]string, len(fds))
	for i, fd := range fds {
		out[i] = fd.Path()
	}
	return out
}

func checkSources(files []SourceFile) (map[string]string, error) {
	if len(files) > maxFiles {
		return nil, fmt.Errorf("%w: %d files; at most %d per schema", ErrInvalid, len(files), maxFiles)
	}
	total := 0
	srcs := make(map[string]string, len(files))
	for _, f := range files {
		total += len(f.Content)
		if f.Path == "" {
			return nil, fmt.Errorf("%w: a source file has no path", ErrInvalid)
		}
		clean := path.Clean(f.Path)
		if clean != f.Path || path.IsAbs(f.Path) || strings.HasPrefix(clean, "../") || !strings.HasSuffix(f.Path, ".proto") {
			return nil, fmt.Errorf("%w: file path %q must be a clean relative path ending in .proto", ErrInvalid, f.Path)
		}
		if _, dup := srcs[f.Path]; dup {
			return nil, fmt.Errorf("%w: file %q given twice", ErrInvalid, f.Path)
		}
		if _, global := globalImport(f.Path); global {
			return nil, fmt.Errorf("%w: file %q shadows a well-known import; do not upload it", ErrInvalid, f.Path)
		}
		srcs[f.Path] = f.Content
	}
	if total > MaxSourceBytes {
		return nil, fmt.Errorf("%w: schema sources are %d bytes; at most %d", ErrInvalid, total, MaxSourceBytes)
	}
	return srcs, nil
}

func compileSources(ctx context.Context, files []SourceFile, refs []resolvedReference) ([]protoreflect.FileDescriptor, error) {
	srcs, err := checkSources(files)
	if err != nil {
		return nil, err
	}
	refFiles := map[string]protoreflect.FileDescriptor{}
	for _, r := range refs {
		refFiles[r.Name] = r.File
		// The referenced file's own imports must resolve too.
		r.Files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
			if _, ok := refFiles[fd.Path()]; !ok {
				refFiles[fd.Path()] = fd
			}
			return true
		})
	}
	resolver := protocompile.CompositeResolver{
		&protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(srcs)},
		protocompile.ResolverFunc(func(name string) (protocompile.SearchResult, error) {
			if fd, ok := refFiles[name]; ok {
				return protocompile.SearchResult{Desc: fd}, nil
			}
			if fd, ok := globalImport(name); ok {
				return protocompile.SearchResult{Desc: fd}, nil
			}
			return protocompile.SearchResult{}, fmt.Errorf("file not found: %q is neither uploaded, a reference, a well-known type nor buf/validate", name)
		}),
	}
	var problems []Problem
	rep := reporter.NewReporter(func(err reporter.ErrorWithPos) error {
		pos := err.GetPosition()
		problems = append(problems, Problem{File: pos.Filename, Line: pos.Line, Column: pos.Col, Message: err.Unwrap().Error()})
		return nil // keep going: the caller gets every error
	}, nil)
	c := protocompile.Compiler{Resolver: resolver, Reporter: rep, SourceInfoMode: protocompile.SourceInfoStandard, MaxParallelism: 1}
	names := make([]string, 0, len(srcs))
	for name := range srcs {
		names = append(names, name)
	}
	sort.Strings(names)
	linked, err := c.Compile(ctx, names...)
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, &CompileError{Problems: []Problem{{Message: err.Error()}}}
	}
	out := make([]protoreflect.FileDescriptor, len(linked))
	for i, f := range linked {
		out[i] = f
	}
	return out, nil
}

// linkDescriptorSet turns a serialized FileDescriptorSet into descriptors.
// Files it imports but does not contain resolve from references and the
// global imports.
func linkDescriptorSet(raw []byte, refs []resolvedReference) ([]protoreflect.FileDescriptor, error) {
	if len(raw) > MaxSourceBytes {
		return nil, fmt.Errorf("%w: file_descriptor_set is %d bytes; at most %d", ErrInvalid, len(raw), MaxSourceBytes)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%w: file_descriptor_set is not a serialized google.protobuf.FileDescriptorSet: %v", ErrInvalid, err)
	}
	if len(set.GetFile()) == 0 {
		return nil, fmt.Errorf("%w: file_descriptor_set holds no file", ErrInvalid)
	}
	byPath := map[string]*descriptorpb.FileDescriptorProto{}
	for _, f := range set.GetFile() {
		if f.GetName() == "" {
			return nil, fmt.Errorf("%w: file_descriptor_set has a file without a name", ErrInvalid)
		}
		byPath[f.GetName()] = f
	}
	reg := new(protoregistry.Files)
	var own []protoreflect.FileDescriptor
	visiting := map[string]bool{}
	var link func(name string) (protoreflect.FileDescriptor, error)
	link = func(name string) (protoreflect.FileDescriptor, error) {
		if fd, err := reg.FindFileByPath(name); err == nil {
			return fd, nil
		}
		// A set often carries the well-known types and buf/validate, as
		// imports of its files (buf build, protoc --include_imports, and
		// the registry's own stored sets do): use ours, as for a schema
		// sent as sources, so they are not taken for the schema's own files.
		if fd, ok := globalImport(name); ok {
			return fd, registerTree(reg, fd)
		}
		fdp, ok := byPath[name]
		if !ok {
			for _, r := range refs {
				if r.Name == name {
					return r.File, registerTree(reg, r.File)
				}
			}
			return nil, fmt.Errorf("%w: import %q is neither in the file_descriptor_set, a reference, a well-known type nor buf/validate", ErrInvalid, name)
		}
		if visiting[name] {
			return nil, fmt.Errorf("%w: import cycle through %q", ErrInvalid, name)
		}
		visiting[name] = true
		for _, dep := range fdp.GetDependency() {
			if _, err := link(dep); err != nil {
				return nil, err
			}
		}
		fd, err := protodesc.NewFile(fdp, reg)
		if err != nil {
			return nil, fmt.Errorf("%w: file %q: %v", ErrInvalid, name, err)
		}
		if err := reg.RegisterFile(fd); err != nil {
			return nil, fmt.Errorf("%w: file %q: %v", ErrInvalid, name, err)
		}
		own = append(own, fd)
		return fd, nil
	}
	for _, f := range set.GetFile() {
		if _, global := globalImport(f.GetName()); global {
			continue // a set often carries the well-known types; use ours
		}
		if _, err := link(f.GetName()); err != nil {
			return nil, err
		}
	}
	return own, nil
}

// registerTree registers fd and its imports in reg, skipping files already there.
func registerTree(reg *protoregistry.Files, fd protoreflect.FileDescriptor) error {
	if _, err := reg.FindFileByPath(fd.Path()); err == nil {
		return nil
	}
	imports := fd.Imports()
	for i := 0; i < imports.Len(); i++ {
		if err := registerTree(reg, imports.Get(i).FileDescriptor); err != nil {
			return err
		}
	}
	return reg.RegisterFile(fd)
}

// descriptorSet returns own and all their transitive imports, dependencies first.
func descriptorSet(own []protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range own {
		add(fd)
	}
	return set
}

// fingerprint hashes the normalised content: each own file's descriptor
// without source info (so comments and formatting do not count), sorted by
// path, the message name and the references.
func fingerprint(own []protoreflect.FileDescriptor, message string, refs []resolvedReference) string {
	h := sha256.New()
	fmt.Fprintf(h, "message=%s\n", message)
	for _, r := range refs {
		fmt.Fprintf(h, "ref=%s:%s:%d\n", r.Name, r.Subject, r.SchemaID)
	}
	for _, fd := range own {
		fdp := protodesc.ToFileDescriptorProto(fd)
		fdp.SourceCodeInfo = nil
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(fdp)
		fmt.Fprintf(h, "file=%s:%d\n", fd.Path(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// filesFromSet rebuilds descriptors from a stored FileDescriptorSet.
func filesFromSet(set *descriptorpb.FileDescriptorSet) (*protoregistry.Files, error) {
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("rebuild descriptors: %w", err)
	}
	return files, nil
}
