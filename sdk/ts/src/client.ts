// The generated clients of every pipeline.v1 service over one transport.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { AccessService } from "./gen/pipeline/v1/access_pb.js";
import { AuditService } from "./gen/pipeline/v1/audit_pb.js";
import { IngestService } from "./gen/pipeline/v1/ingest_pb.js";
import { RouteService } from "./gen/pipeline/v1/route_pb.js";
import { SchemaService } from "./gen/pipeline/v1/schema_pb.js";
import { SinkService } from "./gen/pipeline/v1/sink_pb.js";
import { StatusService } from "./gen/pipeline/v1/status_pb.js";
import { TopicService } from "./gen/pipeline/v1/topic_pb.js";

export interface Clients {
  ingest: Client<typeof IngestService>;
  schema: Client<typeof SchemaService>;
  route: Client<typeof RouteService>;
  sink: Client<typeof SinkService>;
  topic: Client<typeof TopicService>;
  status: Client<typeof StatusService>;
  audit: Client<typeof AuditService>;
  access: Client<typeof AccessService>;
}

/** The generated clients, all on one transport. */
export function createClients(transport: Transport): Clients {
  return {
    ingest: createClient(IngestService, transport),
    schema: createClient(SchemaService, transport),
    route: createClient(RouteService, transport),
    sink: createClient(SinkService, transport),
    topic: createClient(TopicService, transport),
    status: createClient(StatusService, transport),
    audit: createClient(AuditService, transport),
    access: createClient(AccessService, transport),
  };
}

/** Sends `Authorization: Bearer <token>` on every call (a pl_… token or an OIDC JWT). */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("Authorization", `Bearer ${token}`);
    return next(req);
  };
}
