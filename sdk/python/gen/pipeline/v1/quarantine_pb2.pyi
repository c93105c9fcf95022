import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pipeline.v1 import ingest_pb2 as _ingest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplayOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLAY_OUTCOME_UNSPECIFIED: _ClassVar[ReplayOutcome]
    REPLAY_OUTCOME_PUBLISHED: _ClassVar[ReplayOutcome]
    REPLAY_OUTCOME_STILL_REFUSED: _ClassVar[ReplayOutcome]
    REPLAY_OUTCOME_NOT_FOUND: _ClassVar[ReplayOutcome]
    REPLAY_OUTCOME_FAILED: _ClassVar[ReplayOutcome]
REPLAY_OUTCOME_UNSPECIFIED: ReplayOutcome
REPLAY_OUTCOME_PUBLISHED: ReplayOutcome
REPLAY_OUTCOME_STILL_REFUSED: ReplayOutcome
REPLAY_OUTCOME_NOT_FOUND: ReplayOutcome
REPLAY_OUTCOME_FAILED: ReplayOutcome

class RefusedFilter(_message.Message):
    __slots__ = ("subject", "rule", "since", "until", "text")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    rule: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    text: str
    def __init__(self, subject: _Optional[str] = ..., rule: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class ListRefusedRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: RefusedFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[RefusedFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRefusedResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[QuarantinedEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[QuarantinedEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class QuarantinedEvent(_message.Message):
    __slots__ = ("event_id", "subject", "schema_id", "version", "time", "violations", "total_violations", "key", "headers", "binary", "json", "payload_hidden", "trace_id", "size_bytes")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    subject: str
    schema_id: int
    version: int
    time: _timestamp_pb2.Timestamp
    violations: _containers.RepeatedCompositeFieldContainer[_ingest_pb2.FieldViolation]
    total_violations: int
    key: str
    headers: _containers.ScalarMap[str, str]
    binary: bytes
    json: str
    payload_hidden: bool
    trace_id: str
    size_bytes: int
    def __init__(self, event_id: _Optional[str] = ..., subject: _Optional[str] = ..., schema_id: _Optional[int] = ..., version: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., violations: _Optional[_Iterable[_Union[_ingest_pb2.FieldViolation, _Mapping]]] = ..., total_violations: _Optional[int] = ..., key: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., binary: _Optional[bytes] = ..., json: _Optional[str] = ..., payload_hidden: _Optional[bool] = ..., trace_id: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class CountRefusedRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: RefusedFilter
    def __init__(self, filter: _Optional[_Union[RefusedFilter, _Mapping]] = ...) -> None: ...

class CountRefusedResponse(_message.Message):
    __slots__ = ("rules", "subjects")
    RULES_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[RuleCount]
    subjects: _containers.RepeatedCompositeFieldContainer[SubjectCount]
    def __init__(self, rules: _Optional[_Iterable[_Union[RuleCount, _Mapping]]] = ..., subjects: _Optional[_Iterable[_Union[SubjectCount, _Mapping]]] = ...) -> None: ...

class RuleCount(_message.Message):
    __slots__ = ("subject", "rule", "count")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    rule: str
    count: int
    def __init__(self, subject: _Optional[str] = ..., rule: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class SubjectCount(_message.Message):
    __slots__ = ("subject", "count")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    count: int
    def __init__(self, subject: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("subject", "event_ids", "filter", "version", "limit")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    filter: RefusedFilter
    version: int
    limit: int
    def __init__(self, subject: _Optional[str] = ..., event_ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[RefusedFilter, _Mapping]] = ..., version: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReplayResponse(_message.Message):
    __slots__ = ("results", "published", "still_refused", "not_found", "failed", "more", "schema_id", "version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    STILL_REFUSED_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReplayResult]
    published: int
    still_refused: int
    not_found: int
    failed: int
    more: bool
    schema_id: int
    version: int
    def __init__(self, results: _Optional[_Iterable[_Union[ReplayResult, _Mapping]]] = ..., published: _Optional[int] = ..., still_refused: _Optional[int] = ..., not_found: _Optional[int] = ..., failed: _Optional[int] = ..., more: _Optional[bool] = ..., schema_id: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class ReplayResult(_message.Message):
    __slots__ = ("event_id", "outcome", "topics", "violations", "total_violations", "error")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    outcome: ReplayOutcome
    topics: _containers.RepeatedScalarFieldContainer[str]
    violations: _containers.RepeatedCompositeFieldContainer[_ingest_pb2.FieldViolation]
    total_violations: int
    error: _ingest_pb2.EventError
    def __init__(self, event_id: _Optional[str] = ..., outcome: _Optional[_Union[ReplayOutcome, str]] = ..., topics: _Optional[_Iterable[str]] = ..., violations: _Optional[_Iterable[_Union[_ingest_pb2.FieldViolation, _Mapping]]] = ..., total_violations: _Optional[int] = ..., error: _Optional[_Union[_ingest_pb2.EventError, _Mapping]] = ...) -> None: ...
