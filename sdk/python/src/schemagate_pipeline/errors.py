"""Typed errors: what a refusal's status code and details say, decoded."""

from __future__ import annotations

from typing import Optional

import grpc
from google.rpc import error_details_pb2, status_pb2

from pipeline.v1 import ingest_pb2, schema_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class PipelineError(Exception):
    """Why an event (or any call) failed.

    ``violations`` are the reasons a refused event failed validation;
    ``compatibility`` is the detail of a schema refused as incompatible;
    ``event_id`` is the event's id (minted by the Producer unless given):
    publish again with it and no row doubles. ``retryable`` says the last
    attempt failed in a way a retry could cure and the Producer gave up at
    the event's deadline: the event may be stored.
    """

    def __init__(self, code: grpc.StatusCode, message: str, cause: Optional[BaseException] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.cause = cause
        self.event_id = ""
        self.subject = ""
        self.schema_id = 0
        self.violations: list[ingest_pb2.FieldViolation] = []
        self.total_violations = 0
        self.bad_request: list[error_details_pb2.BadRequest.FieldViolation] = []
        self.compatibility: Optional[schema_pb2.CompatibilityError] = None
        self.compile: Optional[schema_pb2.CompileError] = None
        self.reason = ""
        self.metadata: dict[str, str] = {}
        self.retryable = False
        self.attempts = 0

    @property
    def code_name(self) -> str:
        """The code as Connect's JSON names it: "invalid_argument", "unavailable", ..."""
        return self.code.name.lower()

    def __str__(self) -> str:
        s = f"[{self.code_name}]"
        if self.event_id:
            s += f" event {self.event_id}:"
        s += f" {self.message}"
        for v in self.violations[:3]:
            s += f"; {v.field}: {v.message} ({v.rule})"
        if len(self.violations) > 3:
            s += f"; and {max(self.total_violations, len(self.violations)) - 3} more"
        if self.retryable:
            s += (f" (gave up after {self.attempts} attempts; the outcome is unknown:"
                  " publish again with the same event id)")
        return s

    @classmethod
    def from_rpc_error(cls, err: BaseException) -> "PipelineError":
        """Decodes any error of a generated stub's call, or of the Producer."""
        if isinstance(err, PipelineError):
            return err
        if not isinstance(err, grpc.RpcError) or not hasattr(err, "code"):
            return cls(grpc.StatusCode.UNKNOWN, str(err), err)
        out = cls(err.code(), err.details() or "", err)
        for detail in _details(err):
            out._add_detail(detail)
        return out

    @classmethod
    def from_event_error(cls, e: ingest_pb2.EventError) -> "PipelineError":
        """Decodes one event's error of a batch or stream answer."""
        code = getattr(grpc.StatusCode, e.code.upper(), grpc.StatusCode.UNKNOWN)
        out = cls(code, e.message)
        out.violations = list(e.violations)
        out.total_violations = e.total_violations
        return out

    def _add_detail(self, any_pb) -> None:
        for cls_, apply in _DETAILS:
            if any_pb.Is(cls_.DESCRIPTOR):
                m = cls_()
                any_pb.Unpack(m)
                apply(self, m)
                return


def _details(err: grpc.RpcError):
    """The google.rpc.Status details a gRPC error carries in its trailers."""
    try:
        trailers = err.trailing_metadata() or ()
    except Exception:  # an error raised before any answer has none
        return []
    for key, value in trailers:
        if key == _STATUS_DETAILS_KEY:
            return list(status_pb2.Status.FromString(value).details)
    return []


def _validation(e: PipelineError, m: ingest_pb2.ValidationError) -> None:
    e.subject, e.schema_id = m.subject, m.schema_id
    e.violations, e.total_violations = list(m.violations), m.total_violations


def _failure(e: PipelineError, m: ingest_pb2.PublishFailure) -> None:
    e.event_id, e.schema_id = m.event_id, m.schema_id


def _compatibility(e: PipelineError, m: schema_pb2.CompatibilityError) -> None:
    e.compatibility, e.subject = m, m.subject


def _compile(e: PipelineError, m: schema_pb2.CompileError) -> None:
    e.compile = m


def _bad_request(e: PipelineError, m: error_details_pb2.BadRequest) -> None:
    e.bad_request = list(m.field_violations)


def _error_info(e: PipelineError, m: error_details_pb2.ErrorInfo) -> None:
    e.reason, e.metadata = m.reason, dict(m.metadata)


_DETAILS = [
    (ingest_pb2.ValidationError, _validation),
    (ingest_pb2.PublishFailure, _failure),
    (schema_pb2.CompatibilityError, _compatibility),
    (schema_pb2.CompileError, _compile),
    (error_details_pb2.BadRequest, _bad_request),
    (error_details_pb2.ErrorInfo, _error_info),
]
