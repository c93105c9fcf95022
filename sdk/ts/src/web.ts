// Browsers (and any runtime with fetch): the Connect protocol, or
// gRPC-Web, with @connectrpc/connect-web. Streams need a runtime whose
// fetch streams request bodies; batching works everywhere.
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { bearer, createClients, type Clients } from "./client.js";
import { Producer, type ProducerOptions } from "./producer.js";

export * from "./index.js";

export interface ConnectionOptions {
  /** A bearer token for every call. */
  token?: string;
  /** Speak gRPC-Web instead of the Connect protocol. */
  grpcWeb?: boolean;
  interceptors?: Interceptor[];
}

/** A transport to the server at baseUrl (the page's own origin, or one the server's cors.allowed_origins lists). */
export function createTransport(baseUrl: string, options: ConnectionOptions = {}): Transport {
  const interceptors = [...(options.interceptors ?? [])];
  if (options.token) interceptors.push(bearer(options.token));
  return options.grpcWeb
    ? createGrpcWebTransport({ baseUrl, interceptors })
    : createConnectTransport({ baseUrl, interceptors, useBinaryFormat: true });
}

export function connect(baseUrl: string, options: ConnectionOptions = {}): Clients {
  return createClients(createTransport(baseUrl, options));
}

export function createProducer(baseUrl: string, options: ProducerOptions & ConnectionOptions = {}): Producer {
  return new Producer(createTransport(baseUrl, options), options);
}
