package api

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/schema/compat"
)

// updateSubjectConfigWithValidation is UpdateSubjectConfig when the request
// sets validation_compatibility: compatibility may then be left
// unspecified (unchanged). Both inputs are checked before anything is
// written; the response carries the subject's settings afterwards.
func (s *SchemaService) updateSubjectConfigWithValidation(ctx context.Context, m *pipelinev1.UpdateSubjectConfigRequest) (*connect.Response[pipelinev1.UpdateSubjectConfigResponse], error) {
	if err := schema.ValidateSubject(m.GetSubject()); err != nil {
		return nil, toConnectError(err)
	}
	vmode, err := validationFromProto(m.GetValidationCompatibility())
	if err != nil {
		return nil, toConnectError(badRequest("%v", err))
	}
	setMode := m.GetCompatibility() != pipelinev1.Compatibility_COMPATIBILITY_UNSPECIFIED
	var mode compat.Mode
	if setMode {
		if mode, err = modeFromProto(m.GetCompatibility()); err != nil {
			return nil, toConnectError(badRequest("%v", err))
		}
		if err := s.Registry.SetCompatibility(ctx, m.GetSubject(), mode); err != nil {
			return nil, toConnectError(err)
		}
	}
	if err := s.Registry.SetValidationCompatibility(ctx, m.GetSubject(), vmode); err != nil {
		return nil, toConnectError(err)
	}
	if mode, err = s.Registry.Compatibility(ctx, m.GetSubject()); err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.UpdateSubjectConfigResponse{Subject: m.GetSubject(), Compatibility: modeToProto(mode), ValidationCompatibility: validationToProto(vmode)}), nil
}

// renames is the opt-in rename report of CheckCompatibility.
func (s *SchemaService) renames(ctx context.Context, subject string, in schema.Input) ([]*pipelinev1.Violation, error) {
	renames, err := s.Registry.Renames(ctx, subject, in)
	if err != nil {
		return nil, err
	}
	return violationsToProto(renames), nil
}

func validationToProto(m compat.ValidationMode) pipelinev1.ValidationCompatibility {
	return pipelinev1.ValidationCompatibility(pipelinev1.ValidationCompatibility_value["VALIDATION_COMPATIBILITY_"+m.String()])
}

func validationFromProto(c pipelinev1.ValidationCompatibility) (compat.ValidationMode, error) {
	name, ok := strings.CutPrefix(c.String(), "VALIDATION_COMPATIBILITY_")
	if !ok || c == pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_UNSPECIFIED {
		return 0, fmt.Errorf("validation_compatibility %d is not one of OFF, PRODUCER, CONSUMER, BOTH", int32(c))
	}
	return compat.ParseValidationMode(name)
}
