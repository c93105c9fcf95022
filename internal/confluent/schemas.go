package confluent

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/bufbuild/protocompile/parser"
	"github.com/bufbuild/protocompile/reporter"
	"github.com/jhump/protoreflect/v2/protoprint"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/schemagate/pipeline/internal/schema"
)

// Bounds on what a request may carry. A schema is bounded by
// schema.MaxSourceBytes; its JSON body by three times that (escaping), as
// the gRPC API's read bound is.
const (
	maxSchemaBody = 3 * schema.MaxSourceBytes
	maxSmallBody  = 4 << 10 // config and mode bodies
	maxReferences = 256
)

// schemaRequest is the body of POST /subjects/{s}/versions, POST
// /subjects/{s} and the compatibility endpoints.
type schemaRequest struct {
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType"`
	References []reference `json:"references"`
	ID         *int64      `json:"id"`
	Version    *int32      `json:"version"`
}

type reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int32  `json:"version"`
}

// versionJSON is Confluent's Schema entity: a subject's version.
type versionJSON struct {
	Subject    string      `json:"subject"`
	Version    int32       `json:"version"`
	ID         int64       `json:"id"`
	SchemaType string      `json:"schemaType"`
	References []reference `json:"references,omitempty"`
	Schema     string      `json:"schema"`
	Deleted    bool        `json:"deleted,omitempty"`
}

// schemaJSON is Confluent's SchemaString entity: a schema by ID.
type schemaJSON struct {
	SchemaType string      `json:"schemaType"`
	Schema     string      `json:"schema"`
	References []reference `json:"references,omitempty"`
}

// textPath is the file name a schema sent as .proto text gets. Confluent's
// text schemas have none; a reference names the file it imports by the
// subject the serializers register it under (its path), so a subject
// named like a file keeps that name, and every other subject's schema is
// schema.proto (so that one text under two subjects is one schema ID).
func textPath(subject string) string {
	if strings.HasSuffix(subject, ".proto") {
		return subject
	}
	return "schema.proto"
}

// input turns a Confluent schema into the registry's Input: .proto text,
// or a base64-encoded FileDescriptorProto, whose first message is the
// event message.
func input(subject string, req *schemaRequest) (schema.Input, error) {
	switch strings.ToUpper(req.SchemaType) {
	case "PROTOBUF":
	case "", "AVRO":
		return schema.Input{}, errorf(422, codeInvalidSchema, "schemaType AVRO is not supported: this registry holds Protobuf schemas; send \"schemaType\": \"PROTOBUF\"")
	default:
		return schema.Input{}, errorf(422, codeInvalidSchema, "schemaType %.50q is not supported: this registry holds Protobuf schemas; send \"schemaType\": \"PROTOBUF\"", req.SchemaType)
	}
	if strings.TrimSpace(req.Schema) == "" {
		return schema.Input{}, errorf(422, codeInvalidSchema, "schema is required")
	}
	// Base64 grows a schema by a third; past that it is too large either way.
	if len(req.Schema) > schema.MaxSourceBytes/3*4+4 {
		return schema.Input{}, errorf(422, codeSchemaTooLarge, "schema is %d bytes; at most %d", len(req.Schema), schema.MaxSourceBytes)
	}
	if len(req.References) > maxReferences {
		return schema.Input{}, errorf(422, codeInvalidSchema, "%d references; at most %d", len(req.References), maxReferences)
	}
	var in schema.Input
	for _, ref := range req.References {
		v := ref.Version
		if v == -1 {
			v = 0 // latest
		}
		if v < 0 {
			return schema.Input{}, errorf(422, codeInvalidSchema, "reference %.200q: version %d (want a version number, or -1 for the latest)", ref.Name, ref.Version)
		}
		in.References = append(in.References, schema.Reference{Name: ref.Name, Subject: ref.Subject, Version: v})
	}
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(req.Schema)); err == nil {
		if len(raw) > schema.MaxSourceBytes {
			return schema.Input{}, errorf(422, codeSchemaTooLarge, "schema is %d bytes; at most %d", len(raw), schema.MaxSourceBytes)
		}
		return descriptorInput(subject, raw, in)
	}
	if len(req.Schema) > schema.MaxSourceBytes {
		return schema.Input{}, errorf(422, codeSchemaTooLarge, "schema is %d bytes; at most %d", len(req.Schema), schema.MaxSourceBytes)
	}
	return textInput(subject, req.Schema, in)
}

func descriptorInput(subject string, raw []byte, in schema.Input) (schema.Input, error) {
	var fdp descriptorpb.FileDescriptorProto
	if err := proto.Unmarshal(raw, &fdp); err != nil {
		return schema.Input{}, errorf(422, codeInvalidSchema, "schema is neither .proto text nor a base64-encoded google.protobuf.FileDescriptorProto: %v", err)
	}
	if fdp.GetName() == "" {
		fdp.Name = proto.String(textPath(subject))
	}
	msg, err := firstMessage(fdp.GetPackage(), fdp.GetMessageType())
	if err != nil {
		return schema.Input{}, err
	}
	set, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{&fdp}})
	if err != nil {
		return schema.Input{}, fmt.Errorf("encode descriptor set: %w", err)
	}
	in.FileDescriptorSet, in.Message = set, msg
	return in, nil
}

func textInput(subject, text string, in schema.Input) (schema.Input, error) {
	path := textPath(subject)
	var problems []schema.Problem
	handler := reporter.NewHandler(reporter.NewReporter(func(err reporter.ErrorWithPos) error {
		pos := err.GetPosition()
		problems = append(problems, schema.Problem{File: pos.Filename, Line: pos.Line, Column: pos.Col, Message: err.Unwrap().Error()})
		return nil
	}, nil))
	file, _ := parser.Parse(path, strings.NewReader(text), handler)
	var fdp *descriptorpb.FileDescriptorProto
	if len(problems) == 0 && file != nil {
		if res, err := parser.ResultFromAST(file, false, handler); err == nil {
			fdp = res.FileDescriptorProto()
		}
	}
	if len(problems) > 0 || fdp == nil {
		if len(problems) == 0 {
			problems = []schema.Problem{{File: path, Message: "does not parse"}}
		}
		return schema.Input{}, &schema.CompileError{Problems: problems}
	}
	msg, err := firstMessage(fdp.GetPackage(), fdp.GetMessageType())
	if err != nil {
		return schema.Input{}, err
	}
	in.Files, in.Message = []schema.SourceFile{{Path: path, Content: text}}, msg
	return in, nil
}

// firstMessage is the event message of a Confluent schema: the file's
// first message, as Confluent's record name is.
func firstMessage(pkg string, messages []*descriptorpb.DescriptorProto) (string, error) {
	if len(messages) == 0 {
		return "", errorf(422, codeInvalidSchema, "the schema defines no message: its first message is the subject's event message")
	}
	name := messages[0].GetName()
	if pkg != "" {
		name = pkg + "." + name
	}
	return name, nil
}

// schemaString renders sc as Confluent clients read it: its message's file
// as .proto text (the source it was registered with, else printed from
// the descriptors), or with format "serialized" as a base64-encoded
// FileDescriptorProto, which the Protobuf deserializers ask for.
func schemaString(sc *schema.Schema, format string) (string, error) {
	fd := sc.Message.ParentFile()
	if strings.EqualFold(format, "serialized") {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(protodesc.ToFileDescriptorProto(fd))
		if err != nil {
			return "", fmt.Errorf("encode schema %d: %w", sc.ID, err)
		}
		return base64.StdEncoding.EncodeToString(b), nil
	}
	for _, f := range sc.Files {
		if f.Path == fd.Path() && f.Content != "" {
			return f.Content, nil
		}
	}
	var b bytes.Buffer
	if err := (&protoprint.Printer{}).PrintProtoFile(fd, &b); err != nil {
		return "", fmt.Errorf("print schema %d: %w", sc.ID, err)
	}
	return b.String(), nil
}

func references(sc *schema.Schema) []reference {
	out := make([]reference, 0, len(sc.References))
	for _, r := range sc.References {
		out = append(out, reference{Name: r.Name, Subject: r.Subject, Version: r.Version})
	}
	return out
}

func versionOut(v *schema.Version, format string) (*versionJSON, error) {
	text, err := schemaString(v.Schema, format)
	if err != nil {
		return nil, err
	}
	return &versionJSON{Subject: v.Subject, Version: v.Version, ID: v.ID, SchemaType: "PROTOBUF",
		References: references(v.Schema), Schema: text, Deleted: v.Deleted}, nil
}
