import os

from schemagate_pipeline import Batching, PipelineError, Producer

with Producer(os.environ.get("PIPELINE_URL", "http://127.0.0.1:7400"), batching=Batching(linger=0.005)) as producer:
    res = producer.publish("orders", {"orderId": "o-1", "amountCents": "1250", "country": "DE"})
    print("published to", ",".join(res.topics))
    try:
        producer.publish("orders", {"orderId": ""})
    except PipelineError as err:
        print(err.code_name, err.violations[0].field, err.violations[0].rule)
