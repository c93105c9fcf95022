import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pipeline.v1 import latency_pb2 as _latency_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("version", "started_at", "uptime_seconds", "bus", "bus_connected", "bus_error", "registry_connected", "registry_error", "sinks", "ingest_latency")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUS_FIELD_NUMBER: _ClassVar[int]
    BUS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    BUS_ERROR_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ERROR_FIELD_NUMBER: _ClassVar[int]
    SINKS_FIELD_NUMBER: _ClassVar[int]
    INGEST_LATENCY_FIELD_NUMBER: _ClassVar[int]
    version: str
    started_at: _timestamp_pb2.Timestamp
    uptime_seconds: int
    bus: str
    bus_connected: bool
    bus_error: str
    registry_connected: bool
    registry_error: str
    sinks: _containers.RepeatedCompositeFieldContainer[DatabaseStatus]
    ingest_latency: _latency_pb2.Latency
    def __init__(self, version: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime_seconds: _Optional[int] = ..., bus: _Optional[str] = ..., bus_connected: _Optional[bool] = ..., bus_error: _Optional[str] = ..., registry_connected: _Optional[bool] = ..., registry_error: _Optional[str] = ..., sinks: _Optional[_Iterable[_Union[DatabaseStatus, _Mapping]]] = ..., ingest_latency: _Optional[_Union[_latency_pb2.Latency, _Mapping]] = ...) -> None: ...

class DatabaseStatus(_message.Message):
    __slots__ = ("name", "database", "connected", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    database: str
    connected: bool
    error: str
    def __init__(self, name: _Optional[str] = ..., database: _Optional[str] = ..., connected: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("interval", "samples")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    interval: _duration_pb2.Duration
    samples: _containers.RepeatedCompositeFieldContainer[StatusSample]
    def __init__(self, interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., samples: _Optional[_Iterable[_Union[StatusSample, _Mapping]]] = ...) -> None: ...

class StatusSample(_message.Message):
    __slots__ = ("time", "subjects", "topics", "sinks")
    TIME_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    SINKS_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    subjects: _containers.RepeatedCompositeFieldContainer[SubjectSample]
    topics: _containers.RepeatedCompositeFieldContainer[TopicSample]
    sinks: _containers.RepeatedCompositeFieldContainer[SinkSample]
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subjects: _Optional[_Iterable[_Union[SubjectSample, _Mapping]]] = ..., topics: _Optional[_Iterable[_Union[TopicSample, _Mapping]]] = ..., sinks: _Optional[_Iterable[_Union[SinkSample, _Mapping]]] = ...) -> None: ...

class SubjectSample(_message.Message):
    __slots__ = ("subject", "events_accepted", "events_refused")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    subject: str
    events_accepted: int
    events_refused: int
    def __init__(self, subject: _Optional[str] = ..., events_accepted: _Optional[int] = ..., events_refused: _Optional[int] = ...) -> None: ...

class TopicSample(_message.Message):
    __slots__ = ("topic", "events_published")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    topic: str
    events_published: int
    def __init__(self, topic: _Optional[str] = ..., events_published: _Optional[int] = ...) -> None: ...

class SinkSample(_message.Message):
    __slots__ = ("sink", "lag", "rows_written")
    SINK_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    sink: str
    lag: int
    rows_written: int
    def __init__(self, sink: _Optional[str] = ..., lag: _Optional[int] = ..., rows_written: _Optional[int] = ...) -> None: ...
