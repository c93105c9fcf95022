"""Read governed events from Kafka with confluent-kafka's Consumer and ProtobufDeserializer.

Usage: kafka_consumer.py BROKERS TOPIC REGISTRY_URL WORKDIR PROTO_PATH N SUBJECT

The pipeline runs with bus.wire_format: confluent. PROTO_PATH's source is
read from stdin (the file the test registered), compiled with
grpc_tools.protoc, and its nested message shop.v1.Order.Line is the
reader's class: the records' message indexes ([1, 0]) must say so. The
script reads N records from the start of TOPIC as an ordinary Kafka
consumer would, deserializes each with the writer schema's id resolved
through the registry's Confluent API (REGISTRY_URL), prints one line per
event (event id from the record headers, sku, qty) and exits non-zero on
the first check that fails.

The deserializer's subject.name.strategy names the pipeline's subject
(SUBJECT): it sends that subject with the schema lookup
(/schemas/ids/{id}?subject=...), and the registry answers 404 when the id
is not a version of the subject, which the default TopicNameStrategy's
"<topic>-value" is not.
"""

import os
import subprocess
import sys
import uuid

import grpc_tools
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)
    print("ok:", what, flush=True)


def main():
    brokers, topic, registry_url, workdir, proto_path, n, subject = sys.argv[1:8]
    n = int(n)
    protos, out = os.path.join(workdir, "protos"), os.path.join(workdir, "gen")
    os.makedirs(os.path.join(protos, os.path.dirname(proto_path)), exist_ok=True)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(protos, proto_path), "w") as f:
        f.write(sys.stdin.read())
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", protos, "-I", well_known,
                    "--python_out", out, proto_path], check=True)
    sys.path.insert(0, out)
    module = proto_path[:-len(".proto")].replace("/", ".") + "_pb2"
    generated = __import__(module, fromlist=["Order"])
    line_class = generated.Order.Line

    registry = SchemaRegistryClient({"url": registry_url})
    deserializer = ProtobufDeserializer(line_class, {
        "use.deprecated.format": False,
        "subject.name.strategy": lambda ctx, record_name: subject,
    }, registry)
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "python-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen = {}
    polls = 0
    try:
        while len(seen) < n and polls < 600:
            polls += 1
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            check(msg.error() is None, "record without error: %s" % msg.error())
            value = msg.value()
            schema_id = int.from_bytes(value[1:5], "big")
            headers = dict(msg.headers() or [])
            line = deserializer(value, SerializationContext(topic, MessageField.VALUE, msg.headers()))
            event_id = headers["pipeline-event-id"].decode()
            seen[event_id] = (line.sku, line.qty, schema_id)
            print("event %s sku=%s qty=%d schema=%d" % (event_id, line.sku, line.qty, schema_id), flush=True)
    finally:
        consumer.close()
    check(len(seen) == n, "read %d of %d events" % (len(seen), n))
    ids = {sid for (_, _, sid) in seen.values()}
    check(len(ids) == 1, "one writer schema id: %s" % ids)
    (schema_id,) = ids
    writer = registry.get_schema(schema_id)
    check("message Line" in writer.schema_str, "schema %d resolved through the registry's Confluent API" % schema_id)


if __name__ == "__main__":
    main()
