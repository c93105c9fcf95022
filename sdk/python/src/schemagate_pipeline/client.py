"""The generated gRPC stubs of every pipeline.v1 service on one channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

import grpc

from pipeline.v1 import (
    access_pb2_grpc,
    audit_pb2_grpc,
    ingest_pb2_grpc,
    route_pb2_grpc,
    schema_pb2_grpc,
    sink_pb2_grpc,
    status_pb2_grpc,
    topic_pb2_grpc,
)


@dataclass
class TLS:
    """TLS for an https:// URL: a private CA (PEM), a client certificate for mTLS."""

    root_certificates: Optional[bytes] = None
    private_key: Optional[bytes] = None
    certificate_chain: Optional[bytes] = None


def channel(url: str, tls: Optional[TLS] = None) -> grpc.Channel:
    """A gRPC channel to http://host:port (cleartext HTTP/2) or https://host:port."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
        raise ValueError(f"server URL {url!r}: want http://host:port or https://host:port")
    target = f"{parts.hostname}:{parts.port}"
    if parts.scheme == "http":
        return grpc.insecure_channel(target)
    tls = tls or TLS()
    creds = grpc.ssl_channel_credentials(tls.root_certificates, tls.private_key, tls.certificate_chain)
    return grpc.secure_channel(target, creds)


def metadata(token: Optional[str]) -> tuple:
    """The call metadata: the bearer token, if any (a pl_... token or an OIDC JWT)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class Clients:
    """The generated stubs, sharing one channel. Pass ``metadata=clients.metadata`` to calls."""

    def __init__(self, url: str, *, token: Optional[str] = None, tls: Optional[TLS] = None,
                 grpc_channel: Optional[grpc.Channel] = None):
        self.channel = grpc_channel or channel(url, tls)
        self.metadata = metadata(token)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.schema = schema_pb2_grpc.SchemaServiceStub(self.channel)
        self.route = route_pb2_grpc.RouteServiceStub(self.channel)
        self.sink = sink_pb2_grpc.SinkServiceStub(self.channel)
        self.topic = topic_pb2_grpc.TopicServiceStub(self.channel)
        self.status = status_pb2_grpc.StatusServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.access = access_pb2_grpc.AccessServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
