import { createProducer, PipelineError } from "@schemagate/pipeline/node";

const producer = createProducer(process.env.PIPELINE_URL ?? "http://127.0.0.1:7400", {
  batching: { lingerMs: 5, maxEvents: 100 },
});
const res = await producer.publish({
  subject: "orders",
  json: { orderId: "o-1", amountCents: "1250", country: "DE" },
});
console.log("published to", res.topics.join(","));
try {
  await producer.publish({ subject: "orders", json: { orderId: "" } });
} catch (err) {
  if (err instanceof PipelineError) console.log(err.codeName, err.violations[0].field, err.violations[0].rule);
}
await producer.close();
