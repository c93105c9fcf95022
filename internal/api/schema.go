package api

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/schema/compat"
)

// SchemaService serves pipeline.v1.SchemaService from a registry.
type SchemaService struct {
	Registry *schema.Registry
}

var _ pipelinev1connect.SchemaServiceHandler = (*SchemaService)(nil)

func input(files []*pipelinev1.SourceFile, fds []byte, message string, refs []*pipelinev1.Reference) schema.Input {
	in := schema.Input{FileDescriptorSet: fds, Message: message}
	for _, f := range files {
		in.Files = append(in.Files, schema.SourceFile{Path: f.GetPath(), Content: f.GetContent()})
	}
	for _, r := range refs {
		in.References = append(in.References, schema.Reference{Name: r.GetName(), Subject: r.GetSubject(), Version: r.GetVersion()})
	}
	return in
}

// RegisterSchema adds a version to a subject.
func (s *SchemaService) RegisterSchema(ctx context.Context, req *connect.Request[pipelinev1.RegisterSchemaRequest]) (*connect.Response[pipelinev1.RegisterSchemaResponse], error) {
	m := req.Msg
	v, err := s.Registry.Register(ctx, m.GetSubject(), input(m.GetFiles(), m.GetFileDescriptorSet(), m.GetMessage(), m.GetReferences()))
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.RegisterSchemaResponse{SchemaId: v.ID, Version: v.Version}), nil
}

// CheckCompatibility gives RegisterSchema's verdict without registering.
func (s *SchemaService) CheckCompatibility(ctx context.Context, req *connect.Request[pipelinev1.CheckCompatibilityRequest]) (*connect.Response[pipelinev1.CheckCompatibilityResponse], error) {
	m := req.Msg
	in := input(m.GetFiles(), m.GetFileDescriptorSet(), m.GetMessage(), m.GetReferences())
	violations, _, err := s.Registry.Check(ctx, m.GetSubject(), in)
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.CheckCompatibilityResponse{Compatible: len(violations) == 0, Violations: violationsToProto(violations)}
	if m.GetReportRenames() {
		if out.Renames, err = s.renames(ctx, m.GetSubject(), in); err != nil {
			return nil, toConnectError(err)
		}
	}
	return connect.NewResponse(out), nil
}

// GetSchema returns a schema by ID, or by subject and version.
func (s *SchemaService) GetSchema(ctx context.Context, req *connect.Request[pipelinev1.GetSchemaRequest]) (*connect.Response[pipelinev1.GetSchemaResponse], error) {
	m := req.Msg
	if n := len(m.GetKnownFiles()); n > maxKnownFiles {
		return nil, toConnectError(badField("known_files", "known_files has %d paths; at most %d", n, maxKnownFiles))
	}
	if m.GetSchemaId() != 0 {
		sc, err := s.Registry.ByID(ctx, m.GetSchemaId())
		if err != nil {
			return nil, toConnectError(err)
		}
		out, err := schemaAnswer(sc, m.GetKnownFiles())
		if err != nil {
			return nil, toConnectError(err)
		}
		if m.GetSubject() != "" {
			version, err := s.Registry.VersionOf(ctx, m.GetSubject(), sc.ID)
			if err != nil {
				return nil, toConnectError(err)
			}
			out.Subject, out.Version = m.GetSubject(), version
		}
		return connect.NewResponse(&pipelinev1.GetSchemaResponse{Schema: out}), nil
	}
	if m.GetSubject() == "" {
		return nil, toConnectError(badRequest("give schema_id, or subject (and version)"))
	}
	v, err := s.Registry.Get(ctx, m.GetSubject(), m.GetVersion())
	if err != nil {
		return nil, toConnectError(err)
	}
	out, err := schemaAnswer(v.Schema, m.GetKnownFiles())
	if err != nil {
		return nil, toConnectError(err)
	}
	out.Subject, out.Version, out.CreatedAt, out.Deleted = v.Subject, v.Version, timestamppb.New(v.CreatedAt), v.Deleted
	return connect.NewResponse(&pipelinev1.GetSchemaResponse{Schema: out}), nil
}

// schemaAnswer is GetSchema's Schema without the files the caller knows.
func schemaAnswer(sc *schema.Schema, known []string) (*pipelinev1.Schema, error) {
	out := schemaToProto(sc)
	set, err := withoutFiles(out.FileDescriptorSet, known)
	if err != nil {
		return nil, fmt.Errorf("schema %d: %w", sc.ID, err)
	}
	out.FileDescriptorSet = set
	return out, nil
}

func schemaToProto(sc *schema.Schema) *pipelinev1.Schema {
	out := &pipelinev1.Schema{SchemaId: sc.ID, Message: sc.MessageName, FileDescriptorSet: sc.DescriptorSet, CreatedAt: timestamppb.New(sc.CreatedAt)}
	for _, f := range sc.Files {
		out.Files = append(out.Files, &pipelinev1.SourceFile{Path: f.Path, Content: f.Content})
	}
	for _, r := range sc.References {
		out.References = append(out.References, &pipelinev1.Reference{Name: r.Name, Subject: r.Subject, Version: r.Version})
	}
	return out
}

// ListSubjects lists subjects with their latest version.
func (s *SchemaService) ListSubjects(ctx context.Context, req *connect.Request[pipelinev1.ListSubjectsRequest]) (*connect.Response[pipelinev1.ListSubjectsResponse], error) {
	subjects, err := s.Registry.Subjects(ctx, req.Msg.GetPrefix())
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.ListSubjectsResponse{}
	for _, sub := range subjects {
		out.Subjects = append(out.Subjects, &pipelinev1.Subject{Name: sub.Name, LatestVersion: sub.LatestVersion, LatestSchemaId: sub.LatestID, Message: sub.Message, Compatibility: modeToProto(sub.Compatibility)})
	}
	return connect.NewResponse(out), nil
}

// ListVersions lists a subject's versions.
func (s *SchemaService) ListVersions(ctx context.Context, req *connect.Request[pipelinev1.ListVersionsRequest]) (*connect.Response[pipelinev1.ListVersionsResponse], error) {
	rows, err := s.Registry.Versions(ctx, req.Msg.GetSubject(), req.Msg.GetIncludeDeleted())
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.ListVersionsResponse{}
	for _, r := range rows {
		out.Versions = append(out.Versions, &pipelinev1.SchemaVersion{Version: r.Version, SchemaId: r.SchemaID, CreatedAt: timestamppb.New(r.CreatedAt), Deleted: r.Deleted})
	}
	return connect.NewResponse(out), nil
}

// GetSubjectConfig returns the compatibility mode that applies to a
// subject (its own, else the global one); no subject: the global one.
func (s *SchemaService) GetSubjectConfig(ctx context.Context, req *connect.Request[pipelinev1.GetSubjectConfigRequest]) (*connect.Response[pipelinev1.GetSubjectConfigResponse], error) {
	if subject := req.Msg.GetSubject(); subject != schema.Global {
		if err := schema.ValidateSubject(subject); err != nil {
			return nil, toConnectError(err)
		}
	}
	mode, err := s.Registry.Compatibility(ctx, req.Msg.GetSubject())
	if err != nil {
		return nil, toConnectError(err)
	}
	vmode, err := s.Registry.ValidationCompatibility(ctx, req.Msg.GetSubject())
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.GetSubjectConfigResponse{Subject: req.Msg.GetSubject(), Compatibility: modeToProto(mode), ValidationCompatibility: validationToProto(vmode)}), nil
}

// UpdateSubjectConfig sets a subject's compatibility mode; with no
// subject, the global default of every subject without a mode of its own.
func (s *SchemaService) UpdateSubjectConfig(ctx context.Context, req *connect.Request[pipelinev1.UpdateSubjectConfigRequest]) (*connect.Response[pipelinev1.UpdateSubjectConfigResponse], error) {
	if req.Msg.GetValidationCompatibility() != pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_UNSPECIFIED {
		return s.updateSubjectConfigWithValidation(ctx, req.Msg)
	}
	mode, err := modeFromProto(req.Msg.GetCompatibility())
	if err != nil {
		return nil, toConnectError(badRequest("%v", err))
	}
	if err := s.Registry.SetCompatibility(ctx, req.Msg.GetSubject(), mode); err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.UpdateSubjectConfigResponse{Subject: req.Msg.GetSubject(), Compatibility: req.Msg.GetCompatibility()}), nil
}

// DeleteSchemaVersion soft- or hard-deletes a version.
func (s *SchemaService) DeleteSchemaVersion(ctx context.Context, req *connect.Request[pipelinev1.DeleteSchemaVersionRequest]) (*connect.Response[pipelinev1.DeleteSchemaVersionResponse], error) {
	if err := s.Registry.DeleteVersion(ctx, req.Msg.GetSubject(), req.Msg.GetVersion(), req.Msg.GetPermanent()); err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.DeleteSchemaVersionResponse{}), nil
}

func modeToProto(m compat.Mode) pipelinev1.Compatibility {
	if v, ok := pipelinev1.Compatibility_value["COMPATIBILITY_"+m.String()]; ok {
		return pipelinev1.Compatibility(v)
	}
	return pipelinev1.Compatibility_COMPATIBILITY_UNSPECIFIED
}

func modeFromProto(c pipelinev1.Compatibility) (compat.Mode, error) {
	if c == pipelinev1.Compatibility_COMPATIBILITY_UNSPECIFIED {
		return 0, fmt.Errorf("compatibility is required (one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, WIRE, WIRE_TRANSITIVE, WIRE_JSON, WIRE_JSON_TRANSITIVE)")
	}
	return compat.ParseMode(strings.TrimPrefix(c.String(), "COMPATIBILITY_"))
}

func violationsToProto(vs []compat.Violation) []*pipelinev1.Violation {
	out := make([]*pipelinev1.Violation, 0, len(vs))
	for _, v := range vs {
		out = append(out, &pipelinev1.Violation{Rule: v.Rule, Message: v.Message, Location: v.Location, AgainstVersion: v.AgainstVersion})
	}
	return out
}
