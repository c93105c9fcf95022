"""The Producer: the ingest contract built in (ids minted client-side,
retries with the same id, per-event answers), over grpcio."""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import random
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional, Union

import grpc
import uuid6
from google.protobuf.message import Message

from pipeline.v1 import ingest_pb2, ingest_pb2_grpc

from .client import TLS, channel, metadata
from .errors import PipelineError, _details


@dataclass
class Batching:
    """Send PublishBatch calls: a batch goes at max_events or max_bytes, or linger seconds after its first event."""

    linger: float = 0.0
    max_events: int = 500
    max_bytes: int = 1 << 20


@dataclass
class Stream:
    """Send on one PublishStream with at most window events unanswered."""

    window: int = 1000


class Result(NamedTuple):
    """A published event: the bus has it."""

    event_id: str
    schema_id: int
    topics: list
    attempts: int


Payload = Union[Message, bytes, str, dict, list]

_RETRY = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
# Codes a call that broke off before an answer comes back with.
_UNKNOWN_OUTCOME = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED}
_FLUSH = object()
_STOP = object()


def _retryable(err: PipelineError) -> bool:
    """Worth sending again with the same id (docs/pitfalls.md A1). A call that broke off before an
    answer (a reset connection, a killed server, the attempt's own timeout)
    has an unknown outcome: the server sends a detail with every refusal, a
    broken call has none."""
    if "CERTIFICATE_VERIFY_FAILED" in err.message:
        return False  # a server this client does not trust stays untrusted
    if err.code in _RETRY:
        return True
    return err.code in _UNKNOWN_OUTCOME and isinstance(err.cause, grpc.RpcError) and not _details(err.cause)


@dataclass
class _Event:
    req: ingest_pb2.PublishRequest
    size: int
    deadline: float
    future: Future
    attempts: int = 0


@dataclass(order=True)
class _Timer:
    at: float
    seq: int
    fn: Callable[[], None] = field(compare=False)


class Producer:
    """Publishes events and answers each; close() (or ``with``) waits for every answer.

    Modes: one Publish call per event (default, at most max_in_flight at
    once), batching=Batching(...), or stream=Stream(...).
    """

    def __init__(self, url: str, *, token: Optional[str] = None, tls: Optional[TLS] = None,
                 batching: Optional[Batching] = None, stream: Optional[Stream] = None,
                 max_in_flight: Optional[int] = None, deadline: float = 30.0, attempt_timeout: float = 10.0,
                 backoff: tuple = (0.05, 2.0), schemas: Optional[dict] = None,
                 grpc_channel: Optional[grpc.Channel] = None):
        self._own_channel = grpc_channel is None
        self._channel = grpc_channel or channel(url, tls)
        self._stub = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._md = metadata(token)
        self._mode = "stream" if stream else "batch" if batching else "unary"
        self._batching = batching or Batching()
        self._window = (stream or Stream()).window
        self._deadline = deadline
        self._attempt_timeout = attempt_timeout
        self._backoff_min, self._backoff_max = backoff
        self._schemas = dict(schemas or {})

        self._lock = threading.Condition()
        self._outstanding = 0
        self._closed = False
        self._stopped = threading.Event()
        self._timers: list[_Timer] = []
        self._timer_seq = itertools.count()
        self._queue: queue.Queue = queue.Queue()
        workers = max_in_flight or (4 if self._mode == "batch" else 64)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pipeline-producer")
        self._slots = threading.Semaphore(workers)
        self._threads = [threading.Thread(target=self._run_timers, name="pipeline-retries", daemon=True)]
        if self._mode == "batch":
            self._threads.append(threading.Thread(target=self._run_batcher, name="pipeline-batcher", daemon=True))
        elif self._mode == "stream":
            self._threads.append(threading.Thread(target=self._run_streams, name="pipeline-stream", daemon=True))
        for t in self._threads:
            t.start()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def publish(self, subject: str, payload: Payload, **kw) -> Result:
        """Publishes one event and waits for its answer (raises PipelineError)."""
        return self.publish_async(subject, payload, **kw).result()

    def publish_async(self, subject: str, payload: Payload, *, event_id: Optional[str] = None,
                      key: str = "", headers: Optional[dict] = None, schema_id: int = 0) -> Future:
        """Hands the event over and returns a Future of its Result at once.

        payload: a protobuf message (sent as binary), bytes (binary already
        encoded), a str (protojson text) or a dict/list (protojson object).
        The Future's ``event_id`` attribute is the event's id (minted as a
        UUIDv7 unless given)."""
        fut: Future = Future()
        fut.event_id = event_id or str(uuid6.uuid7())
        try:
            req = ingest_pb2.PublishRequest(subject=subject, event_id=fut.event_id, key=key, headers=headers or {},
                                            schema_id=schema_id or self._schemas.get(subject, 0))
            if isinstance(payload, Message):
                req.binary = payload.SerializeToString()
            elif isinstance(payload, (bytes, bytearray)):
                req.binary = bytes(payload)
            elif isinstance(payload, str):
                req.json = payload
            elif isinstance(payload, (dict, list)):
                req.json = json.dumps(payload)
            else:
                raise TypeError(f"payload of type {type(payload).__name__}: want a protobuf message, bytes, str or dict")
        except (TypeError, ValueError) as e:
            err = PipelineError(grpc.StatusCode.INVALID_ARGUMENT, str(e), e)
            err.event_id, err.subject = fut.event_id, subject
            fut.set_exception(err)
            return fut
        with self._lock:
            if self._closed:
                err = PipelineError(grpc.StatusCode.CANCELLED, "the producer is closed")
                err.event_id = fut.event_id
                fut.set_exception(err)
                return fut
            self._outstanding += 1
        self._dispatch(_Event(req=req, size=req.ByteSize(), deadline=time.monotonic() + self._deadline, future=fut))
        return fut

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Sends what is batched at once; waits until every event handed over so far is answered."""
        if self._mode == "batch":
            self._queue.put(_FLUSH)
        with self._lock:
            return self._lock.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """Refuses new events, waits for every answer, then stops."""
        with self._lock:
            self._closed = True
        self.flush(timeout)
        self._stopped.set()
        self._queue.put(_STOP)
        with self._lock:
            self._lock.notify_all()
        for t in self._threads:
            t.join()
        self._pool.shutdown(wait=True)
        # What flush did not see answered in time fails now, never hangs.
        while True:
            try:
                e = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(e, _Event):
                self._answer_err(e, PipelineError(grpc.StatusCode.CANCELLED, "the producer is closed"), e.attempts > 0)
        if self._own_channel:
            self._channel.close()

    # ---- dispatching and answering

    def _dispatch(self, ev: _Event) -> None:
        if self._stopped.is_set():
            self._answer_err(ev, PipelineError(grpc.StatusCode.CANCELLED, "the producer is closed"), ev.attempts > 0)
        elif self._mode == "unary":
            self._pool.submit(self._publish_one, ev)
        else:
            self._queue.put(ev)

    def _timeout(self, deadline: float) -> float:
        return max(0.001, min(self._attempt_timeout, deadline - time.monotonic()))

    def _publish_one(self, ev: _Event) -> None:
        ev.attempts += 1
        try:
            resp = self._stub.Publish(ev.req, timeout=self._timeout(ev.deadline), metadata=self._md)
        except grpc.RpcError as e:
            self._retry_or_fail(ev, PipelineError.from_rpc_error(e))
            return
        self._succeed(ev, resp.schema_id, list(resp.topics))

    def _publish_batch(self, batch: list) -> None:
        try:
            for ev in batch:
                ev.attempts += 1
            req = ingest_pb2.PublishBatchRequest(events=[ev.req for ev in batch])
            try:
                resp = self._stub.PublishBatch(req, timeout=self._timeout(min(ev.deadline for ev in batch)),
                                               metadata=self._md)
            except grpc.RpcError as e:
                for ev in batch:
                    self._retry_or_fail(ev, PipelineError.from_rpc_error(e))
                return
            for i, ev in enumerate(batch):
                if i < len(resp.results):
                    self._answer_result(ev, resp.results[i])
                else:
                    self._retry_or_fail(ev, PipelineError(grpc.StatusCode.INTERNAL,
                                                          f"the server answered {len(resp.results)} of {len(batch)} events"))
        finally:
            self._slots.release()

    def _answer_result(self, ev: _Event, r: ingest_pb2.PublishResult) -> None:
        if r.HasField("error"):
            err = PipelineError.from_event_error(r.error)
            err.schema_id = r.schema_id
            self._retry_or_fail(ev, err)
        else:
            self._succeed(ev, r.schema_id, list(r.topics))

    def _retry_or_fail(self, ev: _Event, err: PipelineError) -> None:
        if not _retryable(err):
            self._answer_err(ev, err, False)
            return
        delay = self._backoff(ev.attempts)
        if self._stopped.is_set() or time.monotonic() + delay > ev.deadline:
            self._answer_err(ev, err, True)
            return
        self._later(delay, lambda: self._dispatch(ev))

    def _backoff(self, attempt: int) -> float:
        d = min(self._backoff_max, self._backoff_min * 2 ** max(0, attempt - 1))
        return d / 2 + random.random() * d / 2

    def _succeed(self, ev: _Event, schema_id: int, topics: list) -> None:
        ev.future.set_result(Result(ev.req.event_id, schema_id, topics, ev.attempts))
        self._done()

    def _answer_err(self, ev: _Event, err: PipelineError, unknown: bool) -> None:
        err.event_id = ev.req.event_id
        err.subject = err.subject or ev.req.subject
        err.attempts, err.retryable = ev.attempts, unknown
        ev.future.set_exception(err)
        self._done()

    def _done(self) -> None:
        with self._lock:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._lock.notify_all()

    # ---- retries

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._timers, _Timer(time.monotonic() + delay, next(self._timer_seq), fn))
            self._lock.notify_all()

    def _run_timers(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._stopped.is_set() and not self._timers:
                        return
                    now = time.monotonic()
                    if self._timers and self._timers[0].at <= now:
                        fn = heapq.heappop(self._timers).fn
                        break
                    self._lock.wait(self._timers[0].at - now if self._timers else None)
            fn()

    # ---- batching

    def _run_batcher(self) -> None:
        carry = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                return
            if first is _FLUSH:
                continue
            batch, size = [first], first.size
            end = time.monotonic() + self._batching.linger
            stop = False
            while len(batch) < self._batching.max_events:
                try:
                    left = end - time.monotonic()
                    e = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if e is _FLUSH:
                    break
                if e is _STOP:
                    stop = True
                    break
                if size + e.size > self._batching.max_bytes:
                    carry = e
                    break
                batch.append(e)
                size += e.size
            self._slots.acquire()
            self._pool.submit(self._publish_batch, batch)
            if stop:
                return

    # ---- streaming

    def _run_streams(self) -> None:
        failures = 0
        first = None
        while not self._stopped.is_set():
            if first is None:
                first = self._queue.get()
            if first is _STOP:
                return
            clean, first = self._run_stream(first)
            failures = 0 if clean else failures + 1
            if not clean:
                self._stopped.wait(self._backoff(failures))

    def _run_stream(self, first: _Event) -> tuple:
        """One PublishStream: sends events while fewer than window are unanswered.
        Returns (ended cleanly, a marker to handle next or None)."""
        inflight: deque = deque()
        window = threading.Semaphore(self._window)
        broken = threading.Event()
        leftover: list = []

        def requests():
            nxt = first
            while True:
                if nxt is None:
                    try:
                        nxt = self._queue.get(timeout=1.0)
                    except queue.Empty:
                        if not inflight:
                            return  # idle: end this stream
                        continue
                if nxt is _STOP:
                    leftover.append(nxt)
                    return
                while not window.acquire(timeout=0.1):
                    if broken.is_set():
                        break
                if broken.is_set():
                    leftover.append(nxt)
                    return
                nxt.attempts += 1
                inflight.append(nxt)
                yield ingest_pb2.PublishStreamRequest(event=nxt.req)
                nxt = None

        failure: Optional[BaseException] = None
        call = self._stub.PublishStream(requests(), metadata=self._md)
        try:
            for resp in call:
                ev = inflight.popleft()
                window.release()
                self._answer_result(ev, resp.result)
        except grpc.RpcError as e:
            failure = e
        except IndexError:
            failure = PipelineError(grpc.StatusCode.INTERNAL, "the server answered an event that was not sent")
        broken.set()
        call.cancel()
        clean = failure is None and not inflight
        while inflight:
            # A fresh error per event: each gets its own id and attempts.
            if isinstance(failure, grpc.RpcError):
                err = PipelineError.from_rpc_error(failure)
            elif isinstance(failure, PipelineError):
                err = PipelineError(failure.code, failure.message)
            else:
                err = PipelineError(grpc.StatusCode.UNAVAILABLE, "the stream ended before every event was answered")
            self._retry_or_fail(inflight.popleft(), err)
        nxt = None
        for e in leftover:
            if e is _STOP:
                nxt = _STOP
            else:
                self._queue.put(e)
        return clean, nxt
