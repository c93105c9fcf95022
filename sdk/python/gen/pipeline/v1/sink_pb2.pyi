import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pipeline.v1 import latency_pb2 as _latency_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplaySinkRequest(_message.Message):
    __slots__ = ("sink", "from_time", "from_start", "truncate")
    SINK_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    sink: str
    from_time: _timestamp_pb2.Timestamp
    from_start: bool
    truncate: bool
    def __init__(self, sink: _Optional[str] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_start: _Optional[bool] = ..., truncate: _Optional[bool] = ...) -> None: ...

class ReplaySinkResponse(_message.Message):
    __slots__ = ("earliest_retained", "before_retention", "truncated_tables", "note")
    EARLIEST_RETAINED_FIELD_NUMBER: _ClassVar[int]
    BEFORE_RETENTION_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_TABLES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    earliest_retained: _timestamp_pb2.Timestamp
    before_retention: bool
    truncated_tables: _containers.RepeatedScalarFieldContainer[str]
    note: str
    def __init__(self, earliest_retained: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., before_retention: _Optional[bool] = ..., truncated_tables: _Optional[_Iterable[str]] = ..., note: _Optional[str] = ...) -> None: ...

class ListSinksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSinksResponse(_message.Message):
    __slots__ = ("sinks",)
    SINKS_FIELD_NUMBER: _ClassVar[int]
    sinks: _containers.RepeatedCompositeFieldContainer[Sink]
    def __init__(self, sinks: _Optional[_Iterable[_Union[Sink, _Mapping]]] = ...) -> None: ...

class Sink(_message.Message):
    __slots__ = ("name", "database", "topics", "rows_written", "last_error", "lag", "subjects", "status", "status_reason", "held_tables", "partitions", "end_to_end_latency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    HELD_TABLES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    END_TO_END_LATENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    database: str
    topics: _containers.RepeatedScalarFieldContainer[str]
    rows_written: int
    last_error: str
    lag: int
    subjects: _containers.RepeatedScalarFieldContainer[str]
    status: str
    status_reason: str
    held_tables: _containers.RepeatedCompositeFieldContainer[HeldTable]
    partitions: _containers.RepeatedCompositeFieldContainer[SinkPartition]
    end_to_end_latency: _latency_pb2.Latency
    def __init__(self, name: _Optional[str] = ..., database: _Optional[str] = ..., topics: _Optional[_Iterable[str]] = ..., rows_written: _Optional[int] = ..., last_error: _Optional[str] = ..., lag: _Optional[int] = ..., subjects: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ..., status_reason: _Optional[str] = ..., held_tables: _Optional[_Iterable[_Union[HeldTable, _Mapping]]] = ..., partitions: _Optional[_Iterable[_Union[SinkPartition, _Mapping]]] = ..., end_to_end_latency: _Optional[_Union[_latency_pb2.Latency, _Mapping]] = ...) -> None: ...

class SinkPartition(_message.Message):
    __slots__ = ("topic", "partition", "lag")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    lag: int
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., lag: _Optional[int] = ...) -> None: ...

class HeldTable(_message.Message):
    __slots__ = ("table", "subject", "reason", "events", "since")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    subject: str
    reason: str
    events: int
    since: _timestamp_pb2.Timestamp
    def __init__(self, table: _Optional[str] = ..., subject: _Optional[str] = ..., reason: _Optional[str] = ..., events: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
