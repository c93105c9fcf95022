// The TypeScript SDK against a real pipeline server: one server for the
// file, killed and restarted by the last test.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { create, type DescMessage } from "@bufbuild/protobuf";
import { Code, type Interceptor } from "@connectrpc/connect";
import { connect, createProducer, createTransport, PipelineError, Producer, type Pending } from "../src/node.js";
import { createProducer as createWebProducer } from "../src/web.js";
import { repo, Server, waitFor } from "./server.js";

let server: Server;
let seq = 0;

before(async () => {
  server = await Server.start();
  await server.register("orders"); // the README example's subject
});
after(async () => server?.stop());

async function subject(): Promise<[string, DescMessage]> {
  const name = `ts_${++seq}_${Date.now()}`;
  return [name, await server.register(name)];
}

test("publish a message object as binary and JSON as JSON", async () => {
  const [subj, Order] = await subject();
  const producer = createProducer(server.url);
  const bin = await producer.publish({ subject: subj, schema: Order, message: create(Order, { orderId: "o-bin", amountCents: 1250n, country: "DE" }) });
  assert.match(bin.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "a minted UUIDv7");
  assert.equal(bin.topics.length, 1);
  assert.equal(bin.attempts, 1);
  const json = await producer.publish({ subject: subj, id: "ts-given-1", json: { orderId: "o-json", amountCents: "99", country: "FR" } });
  assert.equal(json.eventId, "ts-given-1");
  await assert.rejects(producer.publish({ subject: subj }), (e: PipelineError) => e.code === Code.InvalidArgument);
  await producer.close();
  await waitFor("2 rows", 30_000, () => server.count(subj) === 2 || `${server.count(subj)} rows`);
  const rows = server.query(`SELECT _event_id, order_id, amount_cents, country FROM "${subj}" ORDER BY order_id`);
  assert.deepEqual(rows, [
    [bin.eventId, "o-bin", "1250", "DE"],
    ["ts-given-1", "o-json", "99", "FR"],
  ]);
});

test("a batch with one refused event: it fails alone, the others land", async () => {
  const [subj, Order] = await subject();
  const producer = createProducer(server.url, { batching: { lingerMs: 1000, maxEvents: 10 } });
  const pending: Pending[] = [];
  for (let i = 0; i < 10; i++) {
    const amountCents = BigInt(i === 4 ? -5 : i);
    pending.push(producer.publishAsync({ subject: subj, schema: Order, message: create(Order, { orderId: `o-${i}`, amountCents, country: "DE" }) }));
  }
  const settled = await Promise.allSettled(pending.map((p) => p.result));
  await producer.close();
  settled.forEach((s, i) => assert.equal(s.status, i === 4 ? "rejected" : "fulfilled", `event ${i}`));
  const err = (settled[4] as PromiseRejectedResult).reason as PipelineError;
  assert.ok(err instanceof PipelineError);
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.eventId, pending[4].eventId);
  assert.equal(err.retryable, false);
  assert.deepEqual(err.violations.map((v) => `${v.field} ${v.rule}`), ["amount_cents int64.gte"]);
  await waitFor("9 rows", 30_000, () => server.count(subj) === 9 || `${server.count(subj)} rows`);
});

test("a refusal decoded into its violations, and an incompatible schema's error", async () => {
  const [subj] = await subject();
  const producer = createProducer(server.url);
  const p = producer.publishAsync({ subject: subj, json: { orderId: "", amountCents: "-5", country: "Germany" } });
  const err = await p.result.then(
    () => assert.fail("accepted"),
    (e: unknown) => e as PipelineError,
  );
  await producer.close();
  assert.ok(err instanceof PipelineError);
  assert.equal(err.codeName, "invalid_argument");
  assert.equal(err.eventId, p.eventId);
  assert.equal(err.subject, subj);
  assert.ok(err.schemaId > 0n);
  assert.deepEqual(err.violations.map((v) => `${v.field} ${v.rule}`), ["order_id string.min_len", "amount_cents int64.gte", "country string.pattern"]);
  assert.equal(err.totalViolations, 3);
  assert.match(err.message, /amount_cents/);
  const forged = await createProducer(server.url)
    .publish({ subject: subj, json: { orderId: "o-1" }, headers: { "pipeline-event-id": "forged" } })
    .then(
      () => assert.fail("a reserved header was accepted"),
      (e: unknown) => e as PipelineError,
    );
  assert.equal(forged.code, Code.InvalidArgument);
  assert.equal(forged.badRequest.length, 1, "a google.rpc.BadRequest detail");
  assert.match(forged.badRequest[0].description, /pipeline-/);

  const content = readFileSync(join(repo, "sdk/testdata/order_v2_incompatible.proto"), "utf8");
  const refused = await connect(server.url)
    .schema.registerSchema({ subject: subj, message: "shop.v1.OrderCreated", files: [{ path: "shop/v1/order.proto", content }] })
    .then(
      () => assert.fail("an incompatible schema was registered"),
      (e: unknown) => PipelineError.from(e),
    );
  assert.equal(refused.code, Code.FailedPrecondition);
  assert.ok(refused.compatibility && refused.compatibility.violations.length > 0, "a CompatibilityError detail");
  assert.equal(refused.reason, "");
});

test("10,000 events on a stream, never more than the window unanswered", async () => {
  const n = 10_000;
  const window = 64;
  const [subj] = await subject();
  let sent = 0;
  let answered = 0;
  let peak = 0;
  // Counts the messages the transport takes from the producer and the
  // answers it hands back.
  const count: Interceptor = (next) => async (req) => {
    if (!req.stream) return next(req);
    const input = req.message;
    const res = await next({
      ...req,
      message: (async function* () {
        for await (const m of input) {
          sent++;
          peak = Math.max(peak, sent - answered);
          yield m;
        }
      })(),
    });
    if (!res.stream) return res;
    const output = res.message;
    return {
      ...res,
      message: (async function* () {
        for await (const m of output) {
          answered++;
          yield m;
        }
      })(),
    };
  };
  const producer = new Producer(createTransport(server.url, { interceptors: [count] }), { stream: { window } });
  const pending: Pending[] = [];
  for (let i = 0; i < n; i++) {
    pending.push(producer.publishAsync({ subject: subj, json: { orderId: `o-${i}`, amountCents: String(i), country: "DE" } }));
  }
  await producer.close();
  const results = await Promise.all(pending.map((p) => p.result));
  assert.equal(results.length, n);
  assert.equal(sent, n);
  assert.ok(peak <= window && peak > 1, `peak of ${peak} unanswered, want 2..${window}`);
  await waitFor(`${n} rows`, 60_000, () => server.count(subj) === n || `${server.count(subj)} rows`);
});

test("the web transport (fetch, as in browsers) publishes too", async () => {
  const [subj] = await subject();
  const producer = createWebProducer(server.url, { batching: { lingerMs: 5 } });
  const results = await Promise.all(
    [1, 2, 3].map((i) => producer.publish({ subject: subj, json: { orderId: `o-${i}`, amountCents: "1", country: "DE" } })),
  );
  await producer.close();
  assert.equal(new Set(results.map((r) => r.eventId)).size, 3);
  const refused = await createWebProducer(server.url)
    .publish({ subject: subj, json: { orderId: "" } })
    .then(
      () => assert.fail("accepted"),
      (e: unknown) => e as PipelineError,
    );
  assert.deepEqual(refused.violations.map((v) => v.rule), ["string.min_len", "string.pattern"]);
  await waitFor("3 rows", 30_000, () => server.count(subj) === 3 || `${server.count(subj)} rows`);
});

test("TLS with a private CA and a bearer token; an untrusted certificate is refused at once, not retried", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "pipeline-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=pipeline sdk test",
    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
  const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
  const auth = `auth:\n  tokens:\n    - {name: admin, role: admin, sha256: ${sha256("pl_ts_admin")}}\n    - {name: svc, role: producer, sha256: ${sha256("pl_ts_producer")}}\n`;
  const tlsServer = await Server.start({ certFile, keyFile }, auth);
  t.after(() => tlsServer.stop());
  await tlsServer.register("orders", "pl_ts_admin");
  const ca = readFileSync(certFile);
  const event = { subject: "orders", json: { orderId: "o-1", amountCents: "1", country: "DE" } };
  for (const mode of [{}, { stream: { window: 4 } }]) {
    const producer = createProducer(tlsServer.url, { tls: { ca }, token: "pl_ts_producer", ...mode });
    assert.equal((await producer.publish(event)).attempts, 1);
    await producer.close();
  }
  // Without the token: unauthenticated, with its google.rpc.ErrorInfo.
  const anonymous = createProducer(tlsServer.url, { tls: { ca } });
  const denied = await anonymous.publish(event).then(
    () => assert.fail("published without a token"),
    (e: unknown) => e as PipelineError,
  );
  await anonymous.close();
  assert.equal(denied.code, Code.Unauthenticated);
  assert.equal(denied.reason, "UNAUTHENTICATED");
  assert.deepEqual(denied.metadata, { credential: "missing" });
  const untrusting = createProducer(tlsServer.url);
  const start = Date.now();
  const refused = await untrusting.publish(event).then(
    () => assert.fail("published to an untrusted server"),
    (e: unknown) => e as PipelineError,
  );
  await untrusting.close();
  assert.equal(refused.retryable, false, refused.message);
  assert.equal(refused.attempts, 1);
  assert.ok(Date.now() - start < 5000);
});

test("the README example runs as written", () => {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const example = readFileSync(join(repo, "sdk/ts/examples/readme.ts"), "utf8");
  assert.ok(readme.includes("```ts\n" + example + "```"), "README.md's TypeScript example is sdk/ts/examples/readme.ts");
  const out = execFileSync(process.execPath, [join(repo, "sdk/ts/dist/examples/readme.js")], {
    env: { ...process.env, PIPELINE_URL: server.url },
    encoding: "utf8",
  });
  assert.equal(out, "published to events.orders\ninvalid_argument order_id string.min_len\n");
});

test("SIGKILL mid-batch: every published event is one row, none doubled", async () => {
  const n = 3000;
  const [subj, Order] = await subject();
  const producer = createProducer(server.url, {
    batching: { lingerMs: 2, maxEvents: 50 },
    maxInFlight: 2,
    deadlineMs: 90_000,
    backoff: { initialMs: 20, maxMs: 500 },
  });
  let answeredCount = 0;
  const pending: Pending[] = [];
  const feeding = (async () => {
    for (let i = 0; i < n; i++) {
      const p = producer.publishAsync({ subject: subj, schema: Order, message: create(Order, { orderId: `o-${i}`, amountCents: BigInt(i), country: "DE" }) });
      p.result.then(
        () => answeredCount++,
        () => answeredCount++,
      );
      pending.push(p);
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1)); // a steady flow, so the kill lands mid-stream
    }
  })();
  await waitFor("a few hundred answers", 60_000, () => answeredCount >= 300 || `${answeredCount} answered`);
  await server.kill();
  const killedAt = answeredCount;
  await server.start();
  await feeding;
  await producer.close();
  assert.ok(killedAt < n, `all ${n} events were answered before the kill; the test proves nothing`);
  const results = await Promise.all(pending.map((p) => p.result));
  const retried = results.filter((r) => r.attempts > 1).length;
  assert.ok(retried > 0, `no event needed a retry (killed after ${killedAt} answers)`);
  console.log(`killed after ${killedAt} of ${n} answers; ${retried} events were sent more than once`);
  await waitFor("a row for every published event", 60_000, () => server.count(subj) >= n || `${server.count(subj)} rows of ${n}`);
  const rows = server.query(`SELECT _event_id, order_id FROM "${subj}"`);
  const byId = new Map<string, number>();
  const byOrder = new Map<string, number>();
  for (const [id, oid] of rows) {
    byId.set(id, (byId.get(id) ?? 0) + 1);
    byOrder.set(oid, (byOrder.get(oid) ?? 0) + 1);
  }
  for (const r of results) assert.equal(byId.get(r.eventId), 1, `published event ${r.eventId}`);
  for (const [oid, c] of byOrder) assert.equal(c, 1, `order ${oid} stored ${c} times`);
  assert.equal(rows.length, n);
});
