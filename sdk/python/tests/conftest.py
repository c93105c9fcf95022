"""A real pipeline server for the tests: the ``pipeline serve`` binary
(PIPELINE_BIN, built by scripts/test-sdk.sh; else ``go build`` here) on the
embedded defaults in a data dir of its own, one for the whole session,
killable and restartable."""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from pipeline.v1 import schema_pb2
from schemagate_pipeline import Clients

REPO = pathlib.Path(__file__).resolve().parents[3]


def _binary(tmp: pathlib.Path) -> str:
    if os.environ.get("PIPELINE_BIN"):
        return os.environ["PIPELINE_BIN"]
    out = tmp / "pipeline"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/pipeline"], cwd=REPO, check=True)
    return str(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, timeout: float, check) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(0.1)
    raise AssertionError(f"waiting for {what}: {last}")


class Server:
    def __init__(self, binary: str, data_dir: pathlib.Path, config: str = "", ca_file: str = ""):
        self.binary, self.data_dir, self.config, self.ca_file = binary, data_dir, config, ca_file
        self.port = _free_port()
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.proc = None
        self._seq = itertools.count(1)

    def start(self) -> None:
        args = [self.binary, "serve", "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
                "--log-level", "warn"]
        if self.config:
            args += ["--config", self.config]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None

        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"pipeline serve exited {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2, context=context) as r:
                    return r.status == 200
            except OSError as e:
                return str(e)

        wait_for("pipeline serve's /healthz", 60, healthy)

    def kill(self) -> None:
        """SIGKILL: no graceful anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def rows(self, sql: str, *args) -> list:
        db = sqlite3.connect(f"file:{self.data_dir / 'events.db'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def count(self, table: str) -> int:
        try:
            return self.rows(f'SELECT COUNT(*) FROM "{table}"')[0][0]
        except sqlite3.OperationalError:
            return 0  # the sink has not made the table yet

    def register(self, subject: str, tls=None, token=None):
        """Registers sdk/testdata/order.proto under subject; returns the
        OrderCreated class built from the schema the server compiled (what
        generated code would be)."""
        clients = Clients(self.url, tls=tls, token=token)
        try:
            content = (REPO / "sdk/testdata/order.proto").read_text()
            reg = clients.schema.RegisterSchema(schema_pb2.RegisterSchemaRequest(
                subject=subject, message="shop.v1.OrderCreated",
                files=[schema_pb2.SourceFile(path="shop/v1/order.proto", content=content)]), metadata=clients.metadata)
            got = clients.schema.GetSchema(schema_pb2.GetSchemaRequest(schema_id=reg.schema_id), metadata=clients.metadata)
        finally:
            clients.close()
        fds = descriptor_pb2.FileDescriptorSet.FromString(got.schema.file_descriptor_set)
        pool = descriptor_pool.DescriptorPool()
        added: set = set()
        files = {f.name: f for f in fds.file}

        def add(name):  # dependencies first
            if name in added:
                return
            for dep in files[name].dependency:
                add(dep)
            pool.Add(files[name])
            added.add(name)

        for name in files:
            add(name)
        return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.v1.OrderCreated"))

    def new_subject(self):
        name = f"py_{next(self._seq)}_{int(time.time() * 1000)}"
        return name, self.register(name)


@pytest.fixture(scope="session")
def binary():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pipeline-bin-"))
    yield _binary(tmp)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def server(binary):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pipeline-sdk-py-"))
    s = Server(binary, tmp / "data")
    s.start()
    s.register("orders")  # the README example's subject
    yield s
    if s.proc and s.proc.poll() is None:
        s.proc.terminate()
        s.proc.wait(30)
    shutil.rmtree(tmp, ignore_errors=True)
