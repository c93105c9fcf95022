"""Drive the pipeline's Confluent-compatible REST API with confluent-kafka.

Usage: confluent_client.py URL WORKDIR GRPC_SUBJECT GRPC_SCHEMA_ID

URL is the registry URL as a Kafka client is configured with it
(schema.registry.url, e.g. http://127.0.0.1:7400/confluent). GRPC_SUBJECT
was registered through the pipeline's gRPC API with GRPC_SCHEMA_ID, so the
script checks that both APIs see one registry. It prints one line per
check and exits non-zero on the first that fails; on success it prints
ORDERS_ID=<id> for the Go test to look up through gRPC.
"""

import os
import subprocess
import sys

import grpc_tools
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)
    print("ok:", what, flush=True)


def expect_error(fn, status, code, what):
    try:
        fn()
    except SchemaRegistryError as e:
        check(e.http_status_code == status and e.error_code == code,
              "%s: %d %d (%s)" % (what, e.http_status_code, e.error_code, e.error_message))
        return
    check(False, what + ": no error")


MONEY = """syntax = "proto3";
package shop.v1;

message Money {
  string currency = 1;
  int64 units = 2;
}
"""

ORDER = """syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";
import "shop/v1/money.proto";

message Order {
  string order_id = 1;
  Money total = 2;
  google.protobuf.Timestamp placed_at = 3;
}
"""


def registry_client_calls(client, grpc_subject, grpc_id):
    # A registration made through the gRPC API is visible here.
    made = client.get_latest_version(grpc_subject)
    check(made.schema_id == grpc_id and made.version == 1, "gRPC registration seen: id %d" % made.schema_id)

    subject = "greetings-value"
    text = 'syntax = "proto3";\npackage py.v1;\n\nmessage Greeting {\n  string text = 1;\n}\n'
    compatible = text.replace("string text = 1;", "string text = 1;\n  string lang = 2;")
    breaking = text.replace("string text = 1;", "int64 text = 1;")

    sid = client.register_schema(subject, Schema(text, "PROTOBUF"))
    check(sid > 0, "register_schema: id %d" % sid)
    fresh = SchemaRegistryClient({"url": client_url})  # no cache: every answer from the server
    check(fresh.register_schema(subject, Schema(text, "PROTOBUF")) == sid, "same schema again: same id")
    latest = fresh.get_latest_version(subject)
    check(latest.schema_id == sid and latest.version == 1 and latest.subject == subject, "get_latest_version")
    got = fresh.get_schema(sid)
    check(got.schema_type == "PROTOBUF" and "message Greeting" in got.schema_str, "get_schema")
    found = fresh.lookup_schema(subject, Schema(text, "PROTOBUF"))
    check(found.schema_id == sid and found.version == 1, "lookup_schema")
    expect_error(lambda: fresh.lookup_schema(subject, Schema(compatible, "PROTOBUF")), 404, 40403, "lookup of an unregistered schema")
    expect_error(lambda: fresh.get_latest_version("no-such-subject"), 404, 40401, "unknown subject")

    check(fresh.test_compatibility(subject, Schema(compatible, "PROTOBUF")) is True, "test_compatibility: added field")
    check(fresh.test_compatibility(subject, Schema(breaking, "PROTOBUF")) is False, "test_compatibility: changed kind")
    expect_error(lambda: fresh.register_schema(subject, Schema(breaking, "PROTOBUF")), 409, 40901, "incompatible registration")
    expect_error(lambda: fresh.register_schema(subject, Schema("message {", "PROTOBUF")), 422, 42201, "invalid schema")

    check(fresh.get_compatibility() == "BACKWARD", "global compatibility: BACKWARD")
    fresh.set_compatibility(subject, "NONE")
    check(fresh.get_compatibility(subject) == "NONE", "set_compatibility / get_compatibility on the subject")
    fresh.set_compatibility(level="FULL")
    check(fresh.get_compatibility() == "FULL", "set_compatibility / get_compatibility global")
    fresh.set_compatibility(level="BACKWARD")
    expect_error(lambda: fresh.set_compatibility(subject, "SOMETIMES"), 422, 42203, "invalid level")

    v2 = fresh.register_schema(subject, Schema(breaking, "PROTOBUF"))  # allowed under NONE
    check(v2 != sid and fresh.get_versions(subject) == [1, 2], "second version under NONE")
    expect_error(lambda: fresh.delete_version(subject, 2, permanent=True), 404, 40407, "permanent delete before a soft one")
    check(fresh.delete_version(subject, 2) == 2, "delete_version (soft)")
    check(fresh.get_versions(subject) == [1], "versions after the soft delete")
    check(fresh.delete_subject(subject) == [1], "delete_subject (soft)")
    check(subject not in fresh.get_subjects(), "soft-deleted subject not listed")
    check(sorted(fresh.delete_subject(subject, permanent=True)) == [1, 2], "delete_subject (permanent)")
    # Numbers are not handed out again.
    again = fresh.register_schema_full_response(subject, Schema(text, "PROTOBUF"))
    check(again.version == 3 and again.schema_id == sid, "after a permanent delete: version %d, id %d" % (again.version, again.schema_id))


def serializer_round_trip(client, workdir):
    protos = os.path.join(workdir, "protos")
    out = os.path.join(workdir, "gen")
    os.makedirs(os.path.join(protos, "shop", "v1"), exist_ok=True)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(protos, "shop", "v1", "money.proto"), "w") as f:
        f.write(MONEY)
    with open(os.path.join(protos, "shop", "v1", "order.proto"), "w") as f:
        f.write(ORDER)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", protos, "-I", well_known, "--python_out", out,
                    "shop/v1/money.proto", "shop/v1/order.proto"], check=True)
    sys.path.insert(0, out)
    from shop.v1 import money_pb2, order_pb2  # noqa: E402  (generated above)

    ctx = SerializationContext("orders", MessageField.VALUE)
    serializer = ProtobufSerializer(order_pb2.Order, client, {"use.deprecated.format": False})
    msg = order_pb2.Order(order_id="o-1", total=money_pb2.Money(currency="EUR", units=1250))
    msg.placed_at.FromSeconds(1767225600)
    data = serializer(msg, ctx)
    check(data[0] == 0 and len(data) > 5, "ProtobufSerializer: %d bytes in Confluent's framing" % len(data))

    # The imported file became a subject of its own, named after its path;
    # the well-known import did not.
    subjects = client.get_subjects()
    check("shop/v1/money.proto" in subjects and "orders-value" in subjects, "subjects: %s" % subjects)
    check(not any(s.startswith("google/") for s in subjects), "no subject for the well-known types")
    orders = SchemaRegistryClient({"url": client_url}).get_latest_version("orders-value")
    refs = orders.schema.references
    check(len(refs) == 1 and refs[0].name == "shop/v1/money.proto" and refs[0].subject == "shop/v1/money.proto",
          "orders-value references shop/v1/money.proto")

    # A deserializer with no cache reads the writer's schema from the
    # registry (format=serialized) and its references.
    reader_client = SchemaRegistryClient({"url": client_url})
    deserializer = ProtobufDeserializer(order_pb2.Order, {"use.deprecated.format": False}, reader_client)
    back = deserializer(data, ctx)
    check(back == msg, "ProtobufDeserializer round trip: %s" % back.order_id)
    serialized = reader_client.get_schema(orders.schema_id, fmt="serialized")
    check(serialized.schema_str and "message Order" not in serialized.schema_str, "format=serialized is base64")
    print("ORDERS_ID=%d" % orders.schema_id, flush=True)


if __name__ == "__main__":
    client_url, workdir, grpc_subject, grpc_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = SchemaRegistryClient({"url": client_url})
    registry_client_calls(client, grpc_subject, grpc_id)
    serializer_round_trip(client, workdir)
    print("all checks passed", flush=True)
