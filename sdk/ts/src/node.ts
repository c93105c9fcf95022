// Node.js: the Connect (or gRPC) protocol over HTTP/2 with
// @connectrpc/connect-node, cleartext (h2c) for http:// and TLS for https://.
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { SecureClientSessionOptions } from "node:http2";
import { bearer, createClients, type Clients } from "./client.js";
import { Producer, type ProducerOptions } from "./producer.js";

export * from "./index.js";

export interface ConnectionOptions {
  /** A bearer token for every call. */
  token?: string;
  /** TLS for https:// URLs: a private CA (ca), a client certificate (cert, key), servername. */
  tls?: Pick<SecureClientSessionOptions, "ca" | "cert" | "key" | "servername" | "rejectUnauthorized">;
  /** Speak gRPC instead of the Connect protocol. */
  grpc?: boolean;
  interceptors?: Interceptor[];
}

/** A transport to the server at baseUrl (http://host:port or https://host:port). */
export function createTransport(baseUrl: string, options: ConnectionOptions = {}): Transport {
  const interceptors = [...(options.interceptors ?? [])];
  if (options.token) interceptors.push(bearer(options.token));
  const common = { baseUrl, httpVersion: "2" as const, interceptors, nodeOptions: options.tls };
  return options.grpc ? createGrpcTransport(common) : createConnectTransport({ ...common, useBinaryFormat: true });
}

/** The generated clients of every service, for the server at baseUrl. */
export function connect(baseUrl: string, options: ConnectionOptions = {}): Clients {
  return createClients(createTransport(baseUrl, options));
}

/** A Producer for the server at baseUrl. */
export function createProducer(baseUrl: string, options: ProducerOptions & ConnectionOptions = {}): Producer {
  return new Producer(createTransport(baseUrl, options), options);
}
