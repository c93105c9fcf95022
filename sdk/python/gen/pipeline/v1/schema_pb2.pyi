import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Compatibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPATIBILITY_UNSPECIFIED: _ClassVar[Compatibility]
    COMPATIBILITY_NONE: _ClassVar[Compatibility]
    COMPATIBILITY_BACKWARD: _ClassVar[Compatibility]
    COMPATIBILITY_BACKWARD_TRANSITIVE: _ClassVar[Compatibility]
    COMPATIBILITY_FORWARD: _ClassVar[Compatibility]
    COMPATIBILITY_FORWARD_TRANSITIVE: _ClassVar[Compatibility]
    COMPATIBILITY_FULL: _ClassVar[Compatibility]
    COMPATIBILITY_FULL_TRANSITIVE: _ClassVar[Compatibility]
    COMPATIBILITY_WIRE: _ClassVar[Compatibility]
    COMPATIBILITY_WIRE_TRANSITIVE: _ClassVar[Compatibility]
    COMPATIBILITY_WIRE_JSON: _ClassVar[Compatibility]
    COMPATIBILITY_WIRE_JSON_TRANSITIVE: _ClassVar[Compatibility]

class ValidationCompatibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALIDATION_COMPATIBILITY_UNSPECIFIED: _ClassVar[ValidationCompatibility]
    VALIDATION_COMPATIBILITY_OFF: _ClassVar[ValidationCompatibility]
    VALIDATION_COMPATIBILITY_PRODUCER: _ClassVar[ValidationCompatibility]
    VALIDATION_COMPATIBILITY_CONSUMER: _ClassVar[ValidationCompatibility]
    VALIDATION_COMPATIBILITY_BOTH: _ClassVar[ValidationCompatibility]
COMPATIBILITY_UNSPECIFIED: Compatibility
COMPATIBILITY_NONE: Compatibility
COMPATIBILITY_BACKWARD: Compatibility
COMPATIBILITY_BACKWARD_TRANSITIVE: Compatibility
COMPATIBILITY_FORWARD: Compatibility
COMPATIBILITY_FORWARD_TRANSITIVE: Compatibility
COMPATIBILITY_FULL: Compatibility
COMPATIBILITY_FULL_TRANSITIVE: Compatibility
COMPATIBILITY_WIRE: Compatibility
COMPATIBILITY_WIRE_TRANSITIVE: Compatibility
COMPATIBILITY_WIRE_JSON: Compatibility
COMPATIBILITY_WIRE_JSON_TRANSITIVE: Compatibility
VALIDATION_COMPATIBILITY_UNSPECIFIED: ValidationCompatibility
VALIDATION_COMPATIBILITY_OFF: ValidationCompatibility
VALIDATION_COMPATIBILITY_PRODUCER: ValidationCompatibility
VALIDATION_COMPATIBILITY_CONSUMER: ValidationCompatibility
VALIDATION_COMPATIBILITY_BOTH: ValidationCompatibility

class SourceFile(_message.Message):
    __slots__ = ("path", "content")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    content: str
    def __init__(self, path: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Reference(_message.Message):
    __slots__ = ("name", "subject", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    subject: str
    version: int
    def __init__(self, name: _Optional[str] = ..., subject: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RegisterSchemaRequest(_message.Message):
    __slots__ = ("subject", "files", "message", "file_descriptor_set", "references")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    subject: str
    files: _containers.RepeatedCompositeFieldContainer[SourceFile]
    message: str
    file_descriptor_set: bytes
    references: _containers.RepeatedCompositeFieldContainer[Reference]
    def __init__(self, subject: _Optional[str] = ..., files: _Optional[_Iterable[_Union[SourceFile, _Mapping]]] = ..., message: _Optional[str] = ..., file_descriptor_set: _Optional[bytes] = ..., references: _Optional[_Iterable[_Union[Reference, _Mapping]]] = ...) -> None: ...

class RegisterSchemaResponse(_message.Message):
    __slots__ = ("schema_id", "version")
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_id: int
    version: int
    def __init__(self, schema_id: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class CheckCompatibilityRequest(_message.Message):
    __slots__ = ("subject", "files", "message", "file_descriptor_set", "references", "report_renames")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    REPORT_RENAMES_FIELD_NUMBER: _ClassVar[int]
    subject: str
    files: _containers.RepeatedCompositeFieldContainer[SourceFile]
    message: str
    file_descriptor_set: bytes
    references: _containers.RepeatedCompositeFieldContainer[Reference]
    report_renames: bool
    def __init__(self, subject: _Optional[str] = ..., files: _Optional[_Iterable[_Union[SourceFile, _Mapping]]] = ..., message: _Optional[str] = ..., file_descriptor_set: _Optional[bytes] = ..., references: _Optional[_Iterable[_Union[Reference, _Mapping]]] = ..., report_renames: _Optional[bool] = ...) -> None: ...

class CheckCompatibilityResponse(_message.Message):
    __slots__ = ("compatible", "violations", "renames")
    COMPATIBLE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    RENAMES_FIELD_NUMBER: _ClassVar[int]
    compatible: bool
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    renames: _containers.RepeatedCompositeFieldContainer[Violation]
    def __init__(self, compatible: _Optional[bool] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ..., renames: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ...) -> None: ...

class Violation(_message.Message):
    __slots__ = ("rule", "message", "location", "against_version")
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    AGAINST_VERSION_FIELD_NUMBER: _ClassVar[int]
    rule: str
    message: str
    location: str
    against_version: int
    def __init__(self, rule: _Optional[str] = ..., message: _Optional[str] = ..., location: _Optional[str] = ..., against_version: _Optional[int] = ...) -> None: ...

class CompatibilityError(_message.Message):
    __slots__ = ("subject", "compatibility", "violations")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    compatibility: Compatibility
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    def __init__(self, subject: _Optional[str] = ..., compatibility: _Optional[_Union[Compatibility, str]] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ...) -> None: ...

class CompileError(_message.Message):
    __slots__ = ("problems",)
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    problems: _containers.RepeatedCompositeFieldContainer[CompileProblem]
    def __init__(self, problems: _Optional[_Iterable[_Union[CompileProblem, _Mapping]]] = ...) -> None: ...

class CompileProblem(_message.Message):
    __slots__ = ("file", "line", "column", "message")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    file: str
    line: int
    column: int
    message: str
    def __init__(self, file: _Optional[str] = ..., line: _Optional[int] = ..., column: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = ("schema_id", "subject", "version", "known_files")
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FILES_FIELD_NUMBER: _ClassVar[int]
    schema_id: int
    subject: str
    version: int
    known_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema_id: _Optional[int] = ..., subject: _Optional[str] = ..., version: _Optional[int] = ..., known_files: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: Schema
    def __init__(self, schema: _Optional[_Union[Schema, _Mapping]] = ...) -> None: ...

class Schema(_message.Message):
    __slots__ = ("schema_id", "subject", "version", "message", "files", "file_descriptor_set", "references", "created_at", "deleted")
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    schema_id: int
    subject: str
    version: int
    message: str
    files: _containers.RepeatedCompositeFieldContainer[SourceFile]
    file_descriptor_set: bytes
    references: _containers.RepeatedCompositeFieldContainer[Reference]
    created_at: _timestamp_pb2.Timestamp
    deleted: bool
    def __init__(self, schema_id: _Optional[int] = ..., subject: _Optional[str] = ..., version: _Optional[int] = ..., message: _Optional[str] = ..., files: _Optional[_Iterable[_Union[SourceFile, _Mapping]]] = ..., file_descriptor_set: _Optional[bytes] = ..., references: _Optional[_Iterable[_Union[Reference, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ListSubjectsRequest(_message.Message):
    __slots__ = ("prefix",)
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    def __init__(self, prefix: _Optional[str] = ...) -> None: ...

class ListSubjectsResponse(_message.Message):
    __slots__ = ("subjects",)
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    def __init__(self, subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("name", "latest_version", "latest_schema_id", "message", "compatibility")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    latest_version: int
    latest_schema_id: int
    message: str
    compatibility: Compatibility
    def __init__(self, name: _Optional[str] = ..., latest_version: _Optional[int] = ..., latest_schema_id: _Optional[int] = ..., message: _Optional[str] = ..., compatibility: _Optional[_Union[Compatibility, str]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("subject", "include_deleted")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELETED_FIELD_NUMBER: _ClassVar[int]
    subject: str
    include_deleted: bool
    def __init__(self, subject: _Optional[str] = ..., include_deleted: _Optional[bool] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[SchemaVersion]
    def __init__(self, versions: _Optional[_Iterable[_Union[SchemaVersion, _Mapping]]] = ...) -> None: ...

class SchemaVersion(_message.Message):
    __slots__ = ("version", "schema_id", "created_at", "deleted")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    version: int
    schema_id: int
    created_at: _timestamp_pb2.Timestamp
    deleted: bool
    def __init__(self, version: _Optional[int] = ..., schema_id: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted: _Optional[bool] = ...) -> None: ...

class GetSubjectConfigRequest(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    def __init__(self, subject: _Optional[str] = ...) -> None: ...

class GetSubjectConfigResponse(_message.Message):
    __slots__ = ("subject", "compatibility", "validation_compatibility")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    subject: str
    compatibility: Compatibility
    validation_compatibility: ValidationCompatibility
    def __init__(self, subject: _Optional[str] = ..., compatibility: _Optional[_Union[Compatibility, str]] = ..., validation_compatibility: _Optional[_Union[ValidationCompatibility, str]] = ...) -> None: ...

class UpdateSubjectConfigRequest(_message.Message):
    __slots__ = ("subject", "compatibility", "validation_compatibility")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    subject: str
    compatibility: Compatibility
    validation_compatibility: ValidationCompatibility
    def __init__(self, subject: _Optional[str] = ..., compatibility: _Optional[_Union[Compatibility, str]] = ..., validation_compatibility: _Optional[_Union[ValidationCompatibility, str]] = ...) -> None: ...

class UpdateSubjectConfigResponse(_message.Message):
    __slots__ = ("subject", "compatibility", "validation_compatibility")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    subject: str
    compatibility: Compatibility
    validation_compatibility: ValidationCompatibility
    def __init__(self, subject: _Optional[str] = ..., compatibility: _Optional[_Union[Compatibility, str]] = ..., validation_compatibility: _Optional[_Union[ValidationCompatibility, str]] = ...) -> None: ...

class DeleteSchemaVersionRequest(_message.Message):
    __slots__ = ("subject", "version", "permanent")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    version: int
    permanent: bool
    def __init__(self, subject: _Optional[str] = ..., version: _Optional[int] = ..., permanent: _Optional[bool] = ...) -> None: ...

class DeleteSchemaVersionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
