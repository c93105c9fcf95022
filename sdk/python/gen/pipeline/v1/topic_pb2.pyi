from pipeline.v1 import latency_pb2 as _latency_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListTopicsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTopicsResponse(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedCompositeFieldContainer[Topic]
    def __init__(self, topics: _Optional[_Iterable[_Union[Topic, _Mapping]]] = ...) -> None: ...

class Topic(_message.Message):
    __slots__ = ("name", "publish_rate", "events_published", "subscriptions", "partitions", "messages_stored", "dead_letter_of", "publish_latency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_RATE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_STORED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_OF_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_LATENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    publish_rate: float
    events_published: int
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    partitions: int
    messages_stored: int
    dead_letter_of: str
    publish_latency: _latency_pb2.Latency
    def __init__(self, name: _Optional[str] = ..., publish_rate: _Optional[float] = ..., events_published: _Optional[int] = ..., subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ..., partitions: _Optional[int] = ..., messages_stored: _Optional[int] = ..., dead_letter_of: _Optional[str] = ..., publish_latency: _Optional[_Union[_latency_pb2.Latency, _Mapping]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("name", "backlog", "backlog_spans_topics")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_SPANS_TOPICS_FIELD_NUMBER: _ClassVar[int]
    name: str
    backlog: int
    backlog_spans_topics: bool
    def __init__(self, name: _Optional[str] = ..., backlog: _Optional[int] = ..., backlog_spans_topics: _Optional[bool] = ...) -> None: ...
