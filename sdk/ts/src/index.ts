// @schemagate/pipeline: the generated Connect client of pipeline.v1 and a
// Producer that keeps the ingest contract. Transports: ./node (HTTP/2,
// TLS options) and ./web (fetch, for browsers).
export { Producer, type Event, type Pending, type ProducerOptions, type Result } from "./producer.js";
export { PipelineError, codeFromName, codeToName, type BadRequestField } from "./errors.js";
export { createClients, bearer, type Clients } from "./client.js";
