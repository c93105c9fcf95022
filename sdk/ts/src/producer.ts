// The Producer: the ingest contract built in (ids minted client-side,
// retries with the same id, per-event answers), over any Connect transport.
import { create, toBinary, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { v7 as uuidv7 } from "uuid";
import {
  IngestService,
  PublishRequestSchema,
  type PublishRequest,
  type PublishResult,
  type PublishStreamRequest,
} from "./gen/pipeline/v1/ingest_pb.js";
import { PipelineError } from "./errors.js";

/** One event. Give exactly one payload: message (with its schema), json or binary. */
export interface Event {
  subject: string;
  /** A message object of the subject's schema, sent as binary Protobuf. */
  message?: MessageShape<DescMessage>;
  /** The message's schema (OrderCreatedSchema from generated code). */
  schema?: DescMessage;
  /** protojson: an object ({orderId: "o-1"}) or its text. */
  json?: JsonValue | string;
  /** The event already encoded as Protobuf. */
  binary?: Uint8Array;
  /** The idempotency key; empty mints a UUIDv7. */
  id?: string;
  /** Orders events per key on the bus; empty means the route's key field, or the event id. */
  key?: string;
  headers?: Record<string, string>;
  /** Pins the schema to decode with; 0 means the one in options.schemas, else the latest. */
  schemaId?: bigint | number;
  /** Ends the event's life (retries included) early. */
  signal?: AbortSignal;
}

/** A published event: the bus has it. */
export interface Result {
  eventId: string;
  schemaId: bigint;
  topics: string[];
  /** How many times the event was sent (1 without retries). */
  attempts: number;
}

/** An event handed to publishAsync. */
export interface Pending {
  eventId: string;
  result: Promise<Result>;
}

export interface ProducerOptions {
  /** Send PublishBatch calls: a batch goes at maxEvents (500) or maxBytes (1 MiB), or lingerMs after its first event (0). */
  batching?: { lingerMs?: number; maxEvents?: number; maxBytes?: number };
  /** Send on one PublishStream with at most window (1000) events unanswered. */
  stream?: { window?: number };
  /** Calls under way at once: unary Publish calls (64) or batches (4). */
  maxInFlight?: number;
  /** How long one event may take, retries included (30 s). */
  deadlineMs?: number;
  /** How long one call may take (10 s); past it the outcome is unknown and the call is retried. */
  attemptTimeoutMs?: number;
  /** The n-th retry waits a random time in [d/2, d], d = min(initialMs·2ⁿ, maxMs) (50 ms, 2 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Pins subjects to schema ids. */
  schemas?: Record<string, bigint | number>;
}

interface Ev {
  req: PublishRequest;
  size: number;
  deadline: number;
  attempts: number;
  signal?: AbortSignal;
  resolve: (r: Result) => void;
  reject: (e: PipelineError) => void;
}

type Mode = "unary" | "batch" | "stream";

/**
 * Producer publishes events and answers each. Call close() to wait for
 * every answer before the process ends.
 */
export class Producer {
  private readonly client: Client<typeof IngestService>;
  private readonly mode: Mode;
  private readonly linger: number;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly window: number;
  private readonly maxInFlight: number;
  private readonly deadlineMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly backoffMin: number;
  private readonly backoffMax: number;
  private readonly schemas: Record<string, bigint | number>;

  private readonly queue: Ev[] = [];
  private inFlight = 0; // calls under way (unary, batch)
  private outstanding = 0;
  private idleWaiters: (() => void)[] = [];
  private lingerTimer?: ReturnType<typeof setTimeout>;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private closed = false;
  private readonly stop = new AbortController();
  private stream?: StreamSession;
  private streamFailures = 0;

  constructor(transport: Transport, options: ProducerOptions = {}) {
    this.client = createClient(IngestService, transport);
    this.mode = options.stream ? "stream" : options.batching ? "batch" : "unary";
    this.linger = options.batching?.lingerMs ?? 0;
    this.maxEvents = options.batching?.maxEvents ?? 500;
    this.maxBytes = options.batching?.maxBytes ?? 1 << 20;
    this.window = options.stream?.window ?? 1000;
    this.maxInFlight = options.maxInFlight ?? (this.mode === "batch" ? 4 : 64);
    this.deadlineMs = options.deadlineMs ?? 30_000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;
    this.backoffMin = options.backoff?.initialMs ?? 50;
    this.backoffMax = options.backoff?.maxMs ?? 2_000;
    this.schemas = options.schemas ?? {};
  }

  /** Publishes one event and waits for its answer. */
  publish(event: Event): Promise<Result> {
    return this.publishAsync(event).result;
  }

  /** Hands the event over and returns at once; the answer comes in result. */
  publishAsync(event: Event): Pending {
    const eventId = event.id || uuidv7();
    let ev: Ev | undefined;
    const result = new Promise<Result>((resolve, reject) => {
      try {
        const req = this.request(event, eventId);
        ev = {
          req,
          size: toBinary(PublishRequestSchema, req).byteLength,
          deadline: Date.now() + this.deadlineMs,
          attempts: 0,
          signal: event.signal,
          resolve,
          reject,
        };
      } catch (err) {
        const e = err instanceof PipelineError ? err : new PipelineError(Code.InvalidArgument, String(err), err);
        e.eventId = eventId;
        e.subject = event.subject;
        e.refresh();
        reject(e);
      }
    });
    if (ev) {
      if (this.closed) {
        const err = new PipelineError(Code.Canceled, "the producer is closed");
        err.eventId = eventId;
        err.refresh();
        ev.reject(err);
      } else {
        this.outstanding++;
        this.dispatch(ev);
      }
    }
    return { eventId, result };
  }

  private request(event: Event, eventId: string): PublishRequest {
    const payloads = [event.message, event.json, event.binary].filter((p) => p !== undefined).length;
    if (payloads !== 1) {
      throw new PipelineError(Code.InvalidArgument, `an event needs exactly one of message, json and binary (it has ${payloads})`);
    }
    const req = create(PublishRequestSchema, {
      subject: event.subject,
      eventId,
      key: event.key ?? "",
      headers: event.headers ?? {},
      schemaId: BigInt(event.schemaId || this.schemas[event.subject] || 0),
    });
    if (event.message !== undefined) {
      const schema = event.schema;
      if (!schema) throw new PipelineError(Code.InvalidArgument, "a message needs its schema (event.schema)");
      req.payload = { case: "binary", value: toBinary(schema, event.message) };
    } else if (event.binary !== undefined) {
      req.payload = { case: "binary", value: event.binary };
    } else {
      const json = typeof event.json === "string" ? event.json : JSON.stringify(event.json);
      req.payload = { case: "json", value: json };
    }
    return req;
  }

  /** Sends what is batched at once and resolves once every event handed over so far is answered. */
  flush(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    if (this.mode === "batch") this.sendBatches(true);
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new events, waits for every answer, then stops. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    this.stop.abort();
    this.stream?.end();
    for (const t of this.timers) clearTimeout(t);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
  }

  private dispatch(ev: Ev): void {
    if (ev.signal?.aborted) {
      this.answerErr(ev, PipelineError.from(ev.signal.reason), ev.attempts > 0);
      return;
    }
    this.queue.push(ev);
    this.pump();
  }

  private pump(): void {
    switch (this.mode) {
      case "unary":
        while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
          const ev = this.queue.shift()!;
          this.inFlight++;
          void this.publishOne(ev).finally(() => {
            this.inFlight--;
            this.pump();
          });
        }
        return;
      case "batch":
        this.sendBatches(false);
        return;
      case "stream":
        if (this.queue.length === 0) return;
        if (!this.stream) {
          this.stream = new StreamSession(this);
          void this.stream.run().then((clean) => {
            this.stream = undefined;
            this.streamFailures = clean ? 0 : this.streamFailures + 1;
            if (this.stop.signal.aborted) return;
            if (clean) this.pump();
            else this.later(this.backoff(this.streamFailures), () => this.pump());
          });
        } else {
          this.stream.wake();
        }
        return;
    }
  }

  private sendBatches(now: boolean): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      let n = 0;
      let bytes = 0;
      while (n < this.queue.length && n < this.maxEvents && (n === 0 || bytes + this.queue[n].size <= this.maxBytes)) {
        bytes += this.queue[n].size;
        n++;
      }
      const full = n === this.maxEvents || n < this.queue.length;
      if (!full && !now) {
        // Wait for more: lingerMs, or the rest of this tick without linger.
        if (!this.lingerTimer) {
          this.lingerTimer = setTimeout(() => {
            this.lingerTimer = undefined;
            this.sendBatches(true);
          }, this.linger);
        }
        return;
      }
      if (this.lingerTimer) {
        clearTimeout(this.lingerTimer);
        this.lingerTimer = undefined;
      }
      const batch = this.queue.splice(0, n);
      this.inFlight++;
      void this.publishBatch(batch).finally(() => {
        this.inFlight--;
        this.sendBatches(false);
      });
    }
  }

  private callOptions(deadline: number): { signal: AbortSignal; timeoutMs: number } {
    return { signal: this.stop.signal, timeoutMs: Math.max(1, Math.min(this.attemptTimeoutMs, deadline - Date.now())) };
  }

  private async publishOne(ev: Ev): Promise<void> {
    ev.attempts++;
    try {
      const res = await this.client.publish(ev.req, this.callOptions(ev.deadline));
      this.succeed(ev, res.schemaId, res.topics);
    } catch (err) {
      this.retryOrFail(ev, err);
    }
  }

  private async publishBatch(batch: Ev[]): Promise<void> {
    const live = batch.filter((ev) => {
      if (!ev.signal?.aborted) return true;
      this.answerErr(ev, PipelineError.from(ev.signal.reason), ev.attempts > 0);
      return false;
    });
    if (live.length === 0) return;
    for (const ev of live) ev.attempts++;
    const deadline = Math.min(...live.map((ev) => ev.deadline));
    let results: PublishResult[];
    try {
      const res = await this.client.publishBatch({ events: live.map((ev) => ev.req) }, this.callOptions(deadline));
      results = res.results;
    } catch (err) {
      for (const ev of live) this.retryOrFail(ev, err);
      return;
    }
    live.forEach((ev, i) => {
      const r = results[i];
      if (!r) this.retryOrFail(ev, new PipelineError(Code.Internal, `the server answered ${results.length} of ${live.length} events`));
      else this.answerResult(ev, r);
    });
  }

  /** @internal settles ev by its result in a batch or stream answer. */
  answerResult(ev: Ev, r: PublishResult): void {
    if (r.error) {
      const err = PipelineError.fromEventError(r.error);
      err.schemaId = r.schemaId;
      this.retryOrFail(ev, err);
      return;
    }
    this.succeed(ev, r.schemaId, r.topics);
  }

  /** @internal retries ev after a backoff when err is retryable and time is left. */
  retryOrFail(ev: Ev, cause: unknown): void {
    const err = PipelineError.from(cause);
    if (!retryable(err, cause)) {
      this.answerErr(ev, err, false);
      return;
    }
    const delay = this.backoff(ev.attempts);
    if (this.stop.signal.aborted || ev.signal?.aborted || Date.now() + delay > ev.deadline) {
      this.answerErr(ev, err, true);
      return;
    }
    this.later(delay, () => this.dispatch(ev));
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      f();
    }, ms);
    this.timers.add(t);
  }

  private backoff(attempt: number): number {
    const d = Math.min(this.backoffMax, this.backoffMin * 2 ** Math.max(0, attempt - 1));
    return d / 2 + Math.random() * (d / 2);
  }

  private succeed(ev: Ev, schemaId: bigint, topics: string[]): void {
    ev.resolve({ eventId: ev.req.eventId, schemaId, topics, attempts: ev.attempts });
    this.done();
  }

  /** @internal */
  answerErr(ev: Ev, err: PipelineError, unknown: boolean): void {
    err.eventId = ev.req.eventId;
    err.subject ||= ev.req.subject;
    err.attempts = ev.attempts;
    err.retryable = unknown;
    err.refresh();
    ev.reject(err);
    this.done();
  }

  private done(): void {
    this.outstanding--;
    if (this.outstanding === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** @internal for StreamSession */
  get internals() {
    return { client: this.client, queue: this.queue, window: this.window, stop: this.stop.signal };
  }
}

/**
 * retryable: worth sending again with the same id (docs/pitfalls.md A1). A
 * call that broke off before an answer (a reset connection or stream, a
 * killed server, the attempt's own timeout) has an unknown outcome and is
 * retried too. connect-es does not mark which errors came from the peer;
 * the server sends a detail with every refusal (internal errors aside),
 * so an error without details is taken as the transport's own.
 */
function retryable(err: PipelineError, cause: unknown): boolean {
  if (untrusted(cause)) return false; // a server this client does not trust stays untrusted
  switch (err.code) {
    case Code.Unavailable:
    case Code.ResourceExhausted:
      return true;
    case Code.Unknown:
    case Code.Internal:
    case Code.DeadlineExceeded:
    case Code.Aborted:
    case Code.Canceled:
      return cause instanceof ConnectError ? cause.details.length === 0 : !(cause instanceof PipelineError);
  }
  return false;
}

/** untrusted: the cause chain holds Node's refusal of the server's certificate. */
function untrusted(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /CERT|UNABLE_TO_VERIFY|ERR_TLS_/.test(code)) return true;
  }
  return false;
}

/** One PublishStream: sends queued events while fewer than window are unanswered. */
class StreamSession {
  private readonly inflight: Ev[] = [];
  private waker?: () => void;
  private ended = false;

  constructor(private readonly p: Producer) {}

  wake(): void {
    const w = this.waker;
    this.waker = undefined;
    w?.();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  private async *requests(): AsyncGenerator<PublishStreamRequest> {
    const { queue, window, stop } = this.p.internals;
    for (;;) {
      while (queue.length > 0 && this.inflight.length < window) {
        const ev = queue.shift()!;
        if (ev.signal?.aborted) {
          this.p.answerErr(ev, PipelineError.from(ev.signal.reason), ev.attempts > 0);
          continue;
        }
        ev.attempts++;
        this.inflight.push(ev);
        yield { $typeName: "pipeline.v1.PublishStreamRequest", event: ev.req };
      }
      if (this.ended || stop.aborted) return;
      // Idle for a second with nothing unanswered: end this stream.
      const idle = queue.length === 0 && this.inflight.length === 0;
      const woken = await new Promise<boolean>((resolve) => {
        this.waker = () => resolve(true);
        if (idle) setTimeout(() => resolve(false), 1000).unref?.();
      });
      this.waker = undefined;
      if (!woken && queue.length === 0 && this.inflight.length === 0) return;
    }
  }

  /** Runs the stream to its end; true when it ended with every event answered. */
  async run(): Promise<boolean> {
    const { client, stop } = this.p.internals;
    let failure: unknown;
    try {
      for await (const res of client.publishStream(this.requests(), { signal: stop })) {
        const ev = this.inflight.shift();
        if (!ev) throw new PipelineError(Code.Internal, "the server answered an event that was not sent");
        if (res.result) this.p.answerResult(ev, res.result);
        this.wake();
      }
    } catch (err) {
      failure = err;
    }
    this.ended = true;
    this.wake();
    if (this.inflight.length === 0 && failure === undefined) return true;
    const cause = failure ?? new ConnectError("the stream ended before every event was answered", Code.Unavailable);
    for (const ev of this.inflight.splice(0)) this.p.retryOrFail(ev, cause);
    return false;
  }
}
