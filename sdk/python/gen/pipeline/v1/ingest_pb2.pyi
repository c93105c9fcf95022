import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishRequest(_message.Message):
    __slots__ = ("subject", "binary", "json", "event", "key", "event_id", "headers", "schema_id")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    subject: str
    binary: bytes
    json: str
    event: _struct_pb2.Struct
    key: str
    event_id: str
    headers: _containers.ScalarMap[str, str]
    schema_id: int
    def __init__(self, subject: _Optional[str] = ..., binary: _Optional[bytes] = ..., json: _Optional[str] = ..., event: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., key: _Optional[str] = ..., event_id: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., schema_id: _Optional[int] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("event_id", "schema_id", "topics")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    schema_id: int
    topics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_id: _Optional[str] = ..., schema_id: _Optional[int] = ..., topics: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckEventRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: PublishRequest
    def __init__(self, event: _Optional[_Union[PublishRequest, _Mapping]] = ...) -> None: ...

class CheckEventResponse(_message.Message):
    __slots__ = ("schema_id", "version", "targets")
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    schema_id: int
    version: int
    targets: _containers.RepeatedCompositeFieldContainer[CheckedTarget]
    def __init__(self, schema_id: _Optional[int] = ..., version: _Optional[int] = ..., targets: _Optional[_Iterable[_Union[CheckedTarget, _Mapping]]] = ...) -> None: ...

class CheckedTarget(_message.Message):
    __slots__ = ("topic", "key")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    topic: str
    key: str
    def __init__(self, topic: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class PublishBatchRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[PublishRequest]
    def __init__(self, events: _Optional[_Iterable[_Union[PublishRequest, _Mapping]]] = ...) -> None: ...

class PublishBatchResponse(_message.Message):
    __slots__ = ("results", "failed")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PublishResult]
    failed: int
    def __init__(self, results: _Optional[_Iterable[_Union[PublishResult, _Mapping]]] = ..., failed: _Optional[int] = ...) -> None: ...

class PublishResult(_message.Message):
    __slots__ = ("index", "event_id", "schema_id", "topics", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    event_id: str
    schema_id: int
    topics: _containers.RepeatedScalarFieldContainer[str]
    error: EventError
    def __init__(self, index: _Optional[int] = ..., event_id: _Optional[str] = ..., schema_id: _Optional[int] = ..., topics: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[EventError, _Mapping]] = ...) -> None: ...

class EventError(_message.Message):
    __slots__ = ("code", "message", "violations", "total_violations")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    total_violations: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ..., total_violations: _Optional[int] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "rule", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    rule: str
    message: str
    def __init__(self, field: _Optional[str] = ..., rule: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ValidationError(_message.Message):
    __slots__ = ("subject", "schema_id", "violations", "total_violations")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    schema_id: int
    violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    total_violations: int
    def __init__(self, subject: _Optional[str] = ..., schema_id: _Optional[int] = ..., violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ..., total_violations: _Optional[int] = ...) -> None: ...

class PublishFailure(_message.Message):
    __slots__ = ("event_id", "schema_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    schema_id: int
    def __init__(self, event_id: _Optional[str] = ..., schema_id: _Optional[int] = ...) -> None: ...

class PublishStreamRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: PublishRequest
    def __init__(self, event: _Optional[_Union[PublishRequest, _Mapping]] = ...) -> None: ...

class PublishStreamResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: PublishResult
    def __init__(self, result: _Optional[_Union[PublishResult, _Mapping]] = ...) -> None: ...

class ListRefusedEventsRequest(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    def __init__(self, subject: _Optional[str] = ...) -> None: ...

class ListRefusedEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RefusedEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[RefusedEvent, _Mapping]]] = ...) -> None: ...

class RefusedEvent(_message.Message):
    __slots__ = ("time", "event_id", "schema_id", "violations", "payload", "total_violations")
    TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    event_id: str
    schema_id: int
    violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    payload: str
    total_violations: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_id: _Optional[str] = ..., schema_id: _Optional[int] = ..., violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ..., payload: _Optional[str] = ..., total_violations: _Optional[int] = ...) -> None: ...

class ListSubjectStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSubjectStatsResponse(_message.Message):
    __slots__ = ("subjects",)
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[SubjectStats]
    def __init__(self, subjects: _Optional[_Iterable[_Union[SubjectStats, _Mapping]]] = ...) -> None: ...

class SubjectStats(_message.Message):
    __slots__ = ("subject", "events_accepted", "events_refused")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    subject: str
    events_accepted: int
    events_refused: int
    def __init__(self, subject: _Optional[str] = ..., events_accepted: _Optional[int] = ..., events_refused: _Optional[int] = ...) -> None: ...
