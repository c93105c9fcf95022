"""The Python SDK against a real pipeline server (one for the session; the
kill test, last in the file, kills and restarts it)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import wait

import grpc
import pytest

from conftest import REPO, Server, wait_for
from pipeline.v1 import schema_pb2
from schemagate_pipeline import TLS, Batching, Clients, PipelineError, Producer, Stream

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_binary_and_json(server):
    subject, Order = server.new_subject()
    with Producer(server.url) as p:
        binary = p.publish(subject, Order(order_id="o-bin", amount_cents=1250, country="DE"))
        js = p.publish(subject, {"orderId": "o-json", "amountCents": "99", "country": "FR"}, event_id="py-given-1")
        with pytest.raises(PipelineError) as refused:
            p.publish(subject, 42)
    assert UUID7.match(binary.event_id), binary.event_id
    assert len(binary.topics) == 1 and binary.attempts == 1 and binary.schema_id > 0
    assert js.event_id == "py-given-1"
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    wait_for("2 rows", 30, lambda: server.count(subject) == 2 or f"{server.count(subject)} rows")
    rows = server.rows(f'SELECT _event_id, order_id, amount_cents, country FROM "{subject}" ORDER BY order_id')
    assert rows == [(binary.event_id, "o-bin", 1250, "DE"), ("py-given-1", "o-json", 99, "FR")]


def test_batch_with_one_refused(server):
    subject, Order = server.new_subject()
    with Producer(server.url, batching=Batching(linger=1.0, max_events=10)) as p:
        futures = [p.publish_async(subject, Order(order_id=f"o-{i}", amount_cents=-5 if i == 4 else i, country="DE"))
                   for i in range(10)]
        wait(futures)
    for i, f in enumerate(futures):
        if i != 4:
            assert f.exception() is None, f"event {i}: {f.exception()}"
    err = futures[4].exception()
    assert isinstance(err, PipelineError)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.event_id == futures[4].event_id
    assert not err.retryable and err.attempts == 1
    assert [(v.field, v.rule) for v in err.violations] == [("amount_cents", "int64.gte")]
    wait_for("9 rows", 30, lambda: server.count(subject) == 9 or f"{server.count(subject)} rows")


def test_refusal_decoded(server):
    subject, _ = server.new_subject()
    with Producer(server.url) as p:
        f = p.publish_async(subject, {"orderId": "", "amountCents": "-5", "country": "Germany"})
        err = f.exception(30)
    assert isinstance(err, PipelineError)
    assert err.code_name == "invalid_argument" and err.event_id == f.event_id
    assert err.subject == subject and err.schema_id > 0
    assert [(v.field, v.rule) for v in err.violations] == [
        ("order_id", "string.min_len"), ("amount_cents", "int64.gte"), ("country", "string.pattern")]
    assert err.total_violations == 3 and "amount_cents" in str(err)
    with Producer(server.url) as p, pytest.raises(PipelineError) as forged:
        p.publish(subject, {"orderId": "o-1"}, headers={"pipeline-event-id": "forged"})
    assert forged.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(forged.value.bad_request) == 1 and "pipeline-" in forged.value.bad_request[0].description

    content = (REPO / "sdk/testdata/order_v2_incompatible.proto").read_text()
    clients = Clients(server.url)
    with pytest.raises(grpc.RpcError) as raised:
        clients.schema.RegisterSchema(schema_pb2.RegisterSchemaRequest(
            subject=subject, message="shop.v1.OrderCreated",
            files=[schema_pb2.SourceFile(path="shop/v1/order.proto", content=content)]))
    clients.close()
    refused = PipelineError.from_rpc_error(raised.value)
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.compatibility is not None and len(refused.compatibility.violations) > 0


class CountingStream(grpc.StreamStreamClientInterceptor):
    """Counts the requests gRPC takes from the producer and the answers it hands back."""

    def __init__(self):
        self.sent = self.answered = self.peak = 0

    def intercept_stream_stream(self, continuation, details, requests):
        def counted():
            for r in requests:
                self.sent += 1
                self.peak = max(self.peak, self.sent - self.answered)
                yield r

        responses = continuation(details, counted())
        counter = self

        class Answers:
            def __iter__(self):
                return self

            def __next__(self):
                r = next(responses)
                counter.answered += 1
                return r

            def __getattr__(self, name):
                return getattr(responses, name)

        return Answers()


def test_stream_bounded_window(server):
    n, window = 10_000, 64
    subject, _ = server.new_subject()
    counter = CountingStream()
    channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{server.port}"), counter)
    with Producer(server.url, stream=Stream(window=window), grpc_channel=channel) as p:
        futures = [p.publish_async(subject, {"orderId": f"o-{i}", "amountCents": str(i), "country": "DE"})
                   for i in range(n)]
        p.flush()
    channel.close()
    assert all(f.exception() is None for f in futures)
    assert counter.sent == n
    assert 1 < counter.peak <= window, f"peak of {counter.peak} unanswered, want 2..{window}"
    wait_for(f"{n} rows", 60, lambda: server.count(subject) == n or f"{server.count(subject)} rows")


def test_tls_and_token(binary, tmp_path):
    """https:// with a private CA and a bearer token publishes (unary and on a stream); without
    the CA the handshake's refusal is final, not retried to the deadline."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=pipeline sdk test", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    config = tmp_path / "pipeline.yaml"
    sha = lambda s: hashlib.sha256(s.encode()).hexdigest()  # noqa: E731
    config.write_text(f"tls:\n  cert_file: {cert}\n  key_file: {key}\n"
                      f"auth:\n  tokens:\n    - {{name: admin, role: admin, sha256: {sha('pl_py_admin')}}}\n"
                      f"    - {{name: svc, role: producer, sha256: {sha('pl_py_producer')}}}\n")
    tls_server = Server(binary, tmp_path / "data", config=str(config), ca_file=str(cert))
    tls_server.start()
    try:
        tls = TLS(root_certificates=cert.read_bytes())
        tls_server.register("orders", tls=tls, token="pl_py_admin")
        event = {"orderId": "o-1", "amountCents": "1", "country": "DE"}
        for mode in ({}, {"stream": Stream(window=4)}):
            with Producer(tls_server.url, tls=tls, token="pl_py_producer", **mode) as p:
                assert p.publish("orders", event).attempts == 1
        # Without the token: unauthenticated, with its google.rpc.ErrorInfo.
        with Producer(tls_server.url, tls=tls) as p, pytest.raises(PipelineError) as denied:
            p.publish("orders", event)
        assert denied.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert denied.value.reason == "UNAUTHENTICATED" and denied.value.metadata == {"credential": "missing"}
        with Producer(tls_server.url) as p:
            start = time.monotonic()
            with pytest.raises(PipelineError) as refused:
                p.publish("orders", event)
        assert not refused.value.retryable and refused.value.attempts == 1, str(refused.value)
        assert time.monotonic() - start < 5
    finally:
        tls_server.kill()


def test_readme_example(server):
    example = (REPO / "sdk/python/examples/readme.py").read_text()
    readme = (REPO / "README.md").read_text()
    assert "```python\n" + example + "```" in readme, "README.md's Python example is sdk/python/examples/readme.py"
    env = {**os.environ, "PIPELINE_URL": server.url,
           "PYTHONPATH": os.pathsep.join([str(REPO / "sdk/python/src"), str(REPO / "sdk/python/gen")])}
    out = subprocess.run([sys.executable, str(REPO / "sdk/python/examples/readme.py")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "published to events.orders\ninvalid_argument order_id string.min_len\n"


def test_retry_across_sigkill(server):
    """The server is killed (SIGKILL) and started again on its data dir while
    the producer is mid-batch: every event reported published is one row, and
    no order is stored twice (a retry under a new id would show)."""
    n = 3000
    subject, Order = server.new_subject()
    answered = 0
    lock = threading.Lock()

    def note(_):
        nonlocal answered
        with lock:
            answered += 1

    p = Producer(server.url, batching=Batching(linger=0.002, max_events=50), max_in_flight=2,
                 deadline=90, backoff=(0.02, 0.5))
    futures = []

    def feed():
        for i in range(n):
            f = p.publish_async(subject, Order(order_id=f"o-{i}", amount_cents=i, country="DE"))
            f.add_done_callback(note)
            futures.append(f)
            if i % 10 == 9:
                time.sleep(0.001)  # a steady flow, so the kill lands mid-stream

    feeder = threading.Thread(target=feed)
    feeder.start()
    wait_for("a few hundred answers", 60, lambda: answered >= 300 or f"{answered} answered")
    server.kill()
    killed_at = answered
    server.start()
    feeder.join()
    p.close()
    assert killed_at < n, f"all {n} events were answered before the kill; the test proves nothing"
    results = [f.result() for f in futures]
    retried = sum(1 for r in results if r.attempts > 1)
    assert retried > 0, f"no event needed a retry (killed after {killed_at} answers)"
    print(f"killed after {killed_at} of {n} answers; {retried} events were sent more than once")
    wait_for("a row for every published event", 60,
             lambda: server.count(subject) >= n or f"{server.count(subject)} rows of {n}")
    rows = server.rows(f'SELECT _event_id, order_id FROM "{subject}"')
    by_id, by_order = {}, {}
    for event_id, order_id in rows:
        by_id[event_id] = by_id.get(event_id, 0) + 1
        by_order[order_id] = by_order.get(order_id, 0) + 1
    assert all(by_id.get(r.event_id) == 1 for r in results)
    assert all(c == 1 for c in by_order.values())
    assert len(rows) == n
