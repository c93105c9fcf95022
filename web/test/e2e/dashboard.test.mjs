// End-to-end: the real pipeline binary, the embedded dashboard, Debian's
// Chromium driven by playwright-core (no browser download). Seeds a subject
// with two versions, publishes valid and refused events while the browser
// looks, and a second sink whose database does not answer keeps a growing
// backlog. Screenshots of every view go to artifacts/screenshots/.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { importTS } from "../support/load-ts.mjs";
import { buildPipeline, startPipeline, waitFor } from "../support/pipeline.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, "../..");
const repoRoot = resolve(webDir, "..");
const artifacts = join(repoRoot, "artifacts");
const shots = join(artifacts, "screenshots");

const chromiumPath = process.env.PIPELINE_TEST_CHROMIUM ?? "/usr/bin/chromium";
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const V1 = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

// OrderCreated is published when a customer places an order.
message OrderCreated {
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  string country = 3;
}
`;
// v2 adds a field: compatible under BACKWARD.
const V2 = V1.replace("  string country = 3;\n", "  string country = 3;\n  // coupon is the discount code, if any.\n  string coupon = 4;\n");
// Changing a field's type breaks every mode but NONE.
const INCOMPATIBLE = V2.replace("int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0]", "string amount_cents = 2");
const COMPATIBLE = V2.replace("  string coupon = 4;\n", "  string coupon = 4;\n  string channel = 5;\n");
const FILE = "shop/v1/order.proto";
const MESSAGE = "shop.v1.OrderCreated";

let api; // generated Connect clients
let Compatibility;
let pipeline;
let workDir;
let browser;
let page;
let publisher; // the background traffic
const pageErrors = [];
const dialogs = []; // the confirm() texts the tests accepted

/** traffic publishes an event every 200 ms (every 8th refused) until stopped. */
function traffic(ingest) {
  let stopped = false;
  let n = 0;
  const counts = { accepted: 0, refused: 0, failed: 0 };
  const done = (async () => {
    while (!stopped) {
      n++;
      const bad = n % 8 === 0;
      const order = bad
        ? { orderId: "", amountCents: "-1" }
        : { orderId: `o-${n}`, amountCents: String(500 + ((n * 137) % 20000)), country: ["DE", "FR", "NL", "ES"][n % 4] };
      try {
        await ingest.publish({
          subject: "orders",
          eventId: `e2e-${String(n).padStart(5, "0")}`,
          payload: { case: "json", value: JSON.stringify(order) },
        });
        counts.accepted++;
      } catch (err) {
        if (bad) counts.refused++;
        else counts.failed++;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    counts,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** liveRates waits until the subject page shows a measured events/s. */
async function liveRates() {
  await waitFor("the events/s of the subject", async () => /[0-9]/.test(await page.getByTestId("kpi-events").innerText()));
}

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

before(async () => {
  await mkdir(shots, { recursive: true });
  const generated = await importTS(join(webDir, "test/support/client.ts"));
  Compatibility = generated.Compatibility;
  workDir = await mkdtemp(join(tmpdir(), "pipeline-dashboard-e2e-"));
  const bin = await buildPipeline(repoRoot, workDir);
  const data = join(workDir, "data");
  // "warehouse" points at a port where no database listens: it stalls,
  // and its events wait in the bus (its backlog grows).
  const config = `
default_sink: false
sinks:
  - name: main
    url: sqlite://${join(data, "events.db")}
  - name: warehouse
    url: postgres://pipeline@127.0.0.1:1/warehouse?sslmode=disable&connect_timeout=1
    subjects: [orders]
`;
  pipeline = await startPipeline({ bin, workDir, config, logPath: join(artifacts, "dashboard-e2e-pipeline.log") });
  api = generated.clients(pipeline.baseUrl);

  browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    // A refused call (400) is logged by Chromium itself; the tests cause
    // some on purpose. Anything else is the dashboard's fault.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${msg.text()}`);
  });
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.accept();
  });
});

after(async () => {
  await publisher?.stop();
  await browser?.close();
  const code = await pipeline?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
  if (pipeline) assert.equal(code, 0, "pipeline serve should exit 0 on SIGTERM");
});

test("a newcomer's empty pipeline: the dashboard loads and says how to start", async () => {
  const res = await fetch(`${pipeline.baseUrl}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^text\/html/);
  await page.goto(`${pipeline.baseUrl}/`);
  await page.getByText("No subject is registered yet.").waitFor();
  assert.match(await page.locator(".empty").innerText(), /pipeline schema register/);
  await page.getByTestId("health-pill").filter({ hasText: /healthy|down/ }).waitFor();
  await shot("00-empty");
});

test("seed: two versions registered, events published, a backlog builds up", async () => {
  for (const content of [V1, V2]) {
    await api.schema.registerSchema({ subject: "orders", message: MESSAGE, files: [{ path: FILE, content }] });
  }
  publisher = traffic(api.ingest);
  await waitFor("a refused event and a stalled warehouse sink with a backlog", async () => {
    const { sinks } = await api.sink.listSinks({});
    const warehouse = sinks.find((s) => s.name === "warehouse");
    return publisher.counts.refused > 0 && warehouse && warehouse.lag > 0n && warehouse.status === "stalled";
  });
});

test("subjects: the subject with its latest version, mode and live rates; fast first load", async () => {
  await page.goto(`${pipeline.baseUrl}/`);
  const row = page.locator('[data-testid="subject-row"][data-subject="orders"]');
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /shop\.v1\.OrderCreated/);
  assert.match(text, /v2/);
  assert.match(text, /BACKWARD/);
  // Rates come from successive polls (2 s apart): wait for two.
  await waitFor("non-zero events/s and refusals/s", async () => {
    const ev = Number((await row.getByTestId("events-rate").innerText()).replace(/[^0-9.]/g, ""));
    const rf = Number((await row.getByTestId("refusals-rate").innerText()).replace(/[^0-9.]/g, ""));
    return ev > 0 && rf > 0;
  });
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return { load: nav.loadEventEnd, bytes: performance.getEntriesByType("resource").reduce((n, r) => n + (r.transferSize || 0), nav.transferSize || 0) };
  });
  assert.ok(timing.load > 0 && timing.load < 1000, `page load took ${timing.load} ms, want well under a second`);

  await page.getByTestId("subject-search").fill("no-such-subject");
  await page.getByText("No subject matches").waitFor();
  await page.getByTestId("subject-search").fill("order");
  await row.waitFor();
  await shot("01-subjects");
});

test("subject: both versions, highlighted source of each", async () => {
  await page.locator('[data-testid="subject-row"][data-subject="orders"] a').click();
  await page.waitForURL(/\/subjects\/orders$/);
  await page.getByTestId("subject-name").filter({ hasText: "orders" }).waitFor();
  const versions = page.getByTestId("version-item");
  await waitFor("two versions listed", async () => (await versions.count()) === 2);
  assert.deepEqual(await versions.evaluateAll((els) => els.map((e) => e.getAttribute("data-version"))), ["1", "2"]);

  const source = page.getByTestId("source-file");
  await source.filter({ hasText: "coupon" }).waitFor(); // the latest, v2, first
  assert.ok(await source.locator(".tok-keyword", { hasText: "message" }).count(), "keywords are highlighted");
  assert.ok(await source.locator(".tok-decl", { hasText: "OrderCreated" }).count(), "the declared message name is highlighted");
  assert.ok(await source.locator(".tok-comment").count(), "comments are highlighted");

  await page.locator('[data-testid="version-item"][data-version="1"]').click();
  await page.getByRole("heading", { name: "Version 1" }).waitFor();
  assert.doesNotMatch(await source.innerText(), /coupon/, "v1 has no coupon field");
  assert.match(await source.innerText(), /amount_cents/);
  await page.locator('[data-testid="version-item"][data-version="2"]').click();
  await page.getByRole("heading", { name: "Version 2" }).waitFor();
  await shot("02-subject-source");
});

test("subject: the diff between v1 and v2, opened by its URL", async () => {
  await page.goto(`${pipeline.baseUrl}/subjects/orders?tab=diff`);
  const inserted = page.locator('[data-testid="diff-file"] tr[data-kind="insert"]');
  await inserted.first().waitFor();
  assert.equal(await page.getByTestId("diff-from").inputValue(), "1");
  assert.equal(await page.getByTestId("diff-to").inputValue(), "2");
  const added = await inserted.allInnerTexts();
  assert.equal(added.length, 2, `two lines added: ${JSON.stringify(added)}`);
  assert.ok(added.some((l) => l.includes("string coupon = 4;")), `the coupon field is an added line: ${JSON.stringify(added)}`);
  assert.equal(await page.locator('[data-testid="diff-file"] tr[data-kind="delete"]').count(), 0, "nothing removed");
  assert.match(await page.getByTestId("diff-summary").innerText(), /1 of 1 file changed from v1 to v2/);

  // The other direction: the added lines become removed ones.
  await page.getByTestId("diff-from").selectOption("2");
  await page.getByTestId("diff-to").selectOption("1");
  await page.locator('[data-testid="diff-file"] tr[data-kind="delete"]').first().waitFor();
  assert.equal(await page.locator('[data-testid="diff-file"] tr[data-kind="insert"]').count(), 0);
  await page.getByTestId("diff-from").selectOption("1");
  await page.getByTestId("diff-to").selectOption("2");
  await inserted.first().waitFor();
  await liveRates();
  await shot("03-subject-diff");
});

test("subject: a pasted candidate is checked; an incompatible one shows its violations", async () => {
  await page.getByTestId("tab-check").click();
  const source = page.getByTestId("check-source");
  await waitFor("the candidate box prefilled with the latest version", async () => (await source.inputValue()).includes("coupon"));
  assert.equal(await page.getByTestId("check-path").inputValue(), FILE);
  assert.equal(await page.getByTestId("check-message").inputValue(), MESSAGE);

  // A candidate that does not compile: the compiler's problems, by line.
  await source.fill('syntax = "proto3";\npackage shop.v1;\nmessage OrderCreated {\n  string order_id = ;\n}\n');
  await page.getByTestId("check-run").click();
  await page.getByTestId("verdict").filter({ hasText: "Not checked" }).waitFor();
  const problems = await page.locator(".check-result .notice li").allInnerTexts();
  assert.ok(problems.some((p) => p.startsWith(`${FILE}:4:`)), `compile problems: ${JSON.stringify(problems)}`);

  await source.fill(COMPATIBLE);
  await page.getByTestId("check-run").click();
  await page.getByTestId("verdict").filter({ hasText: "Compatible" }).waitFor();
  assert.match(await page.getByTestId("verdict").innerText(), /^Compatible under BACKWARD/);

  await source.fill(INCOMPATIBLE);
  await page.getByTestId("check-run").click();
  await page.getByTestId("verdict").filter({ hasText: "Incompatible" }).waitFor();
  const rows = await page.getByTestId("violation-row").allInnerTexts();
  assert.ok(rows.length >= 1, "at least one violation");
  assert.ok(rows.some((r) => r.includes("FIELD_SCALAR_KIND_CHANGED") && r.includes("amount_cents")), `violations: ${JSON.stringify(rows)}`);

  // Nothing was registered by checking.
  const { versions } = await api.schema.listVersions({ subject: "orders" });
  assert.equal(versions.length, 2);
  await shot("04-subject-check-incompatible");
});

test("subject: a pasted event is checked: a valid one shows where it would go, an invalid one its violations", async () => {
  await page.getByTestId("tab-event").click();
  const json = page.getByTestId("event-json");
  await json.fill('{"orderId": "o-check", "amountCents": "5"}');
  await page.getByTestId("event-run").click();
  await page.getByTestId("event-verdict").filter({ hasText: "Valid" }).waitFor();
  assert.match(await page.getByTestId("event-verdict").innerText(), /^Valid against v2 .*Nothing was published\./);
  const targets = await page.getByTestId("event-target").allInnerTexts();
  assert.ok(targets.some((t) => t.includes("orders")), `targets: ${JSON.stringify(targets)}`);

  await json.fill('{"orderId": "", "amountCents": "-1"}');
  await page.getByTestId("event-run").click();
  await page.getByTestId("event-verdict").filter({ hasText: "Refused" }).waitFor();
  const violations = await page.getByTestId("event-violation").allInnerTexts();
  assert.ok(violations.some((v) => v.includes("order_id") && v.includes("string.min_len")), JSON.stringify(violations));
  assert.ok(violations.some((v) => v.includes("amount_cents") && v.includes("int64.gte")), JSON.stringify(violations));

  // Pinned to v1, whose message has no coupon: the field is refused by name.
  await json.fill('{"orderId": "o-2", "amountCents": "5", "coupon": "X"}');
  const v1 = (await api.schema.listVersions({ subject: "orders" })).versions.find((v) => v.version === 1);
  await page.getByTestId("event-version").selectOption(String(v1.schemaId));
  await page.getByTestId("event-run").click();
  await page.getByTestId("event-verdict").filter({ hasText: "Refused" }).waitFor();
  assert.match(await page.getByTestId("event-result").innerText(), /coupon/);
  await shot("04b-subject-check-event");
});

test("subject: the last refused events with their violations", async () => {
  await page.getByTestId("tab-refused").click();
  const row = page.getByTestId("refused-row").first();
  await row.waitFor();
  const violations = await row.getByTestId("refused-violation").allInnerTexts();
  assert.ok(violations.some((v) => v.includes("order_id") && v.includes("string.min_len")), JSON.stringify(violations));
  assert.ok(violations.some((v) => v.includes("amount_cents") && v.includes("int64.gte")), JSON.stringify(violations));
  await row.locator("summary", { hasText: "payload" }).click();
  assert.match(await row.locator("pre.payload").innerText(), /"amountCents":"-1"/);
  assert.match(await row.innerText(), /e2e-\d{5}/, "the event id the client gave");
  assert.match(await row.innerText(), /v2/, "the version the event was checked against");
  // The traffic refuses an event every 1.6 s: the list is redrawn, and the
  // payload the reader opened stays open.
  const openedId = (await row.locator("td").nth(1).innerText()).trim();
  await waitFor("a newer refused event on top", async () =>
    (await page.getByTestId("refused-row").first().locator("td").nth(1).innerText()).trim() !== openedId);
  const opened = page.getByTestId("refused-row").filter({ hasText: openedId });
  assert.equal(await opened.locator("details").evaluate((d) => d.open), true, "the opened payload is still open after the redraw");
  await shot("05-subject-refused");
});

test("subject: an admin changes the compatibility mode", async () => {
  await page.getByTestId("mode-select").selectOption({ label: "FULL_TRANSITIVE" });
  await page.getByTestId("mode-save").click();
  await page.getByTestId("mode-saved").filter({ hasText: "FULL_TRANSITIVE" }).waitFor();
  const cfg = await api.schema.getSubjectConfig({ subject: "orders" });
  assert.equal(cfg.compatibility, Compatibility.FULL_TRANSITIVE);
  await page.getByTestId("mode-select").selectOption({ label: "BACKWARD" });
  await page.getByTestId("mode-save").click();
  await page.getByTestId("mode-saved").filter({ hasText: "BACKWARD" }).waitFor();
  assert.equal((await api.schema.getSubjectConfig({ subject: "orders" })).compatibility, Compatibility.BACKWARD);
});

test("routes: create (a bad filter is refused with its reason), list, delete", async () => {
  await page.getByRole("link", { name: "Routes", exact: true }).click();
  await page.waitForURL(/\/routes$/);
  const form = page.getByTestId("route-form");
  await form.locator('select[name="subject"] option[value="orders"]').waitFor({ state: "attached" });
  await form.locator('input[name="name"]').fill("big-orders");
  await form.locator('select[name="subject"]').selectOption("orders");
  await form.locator('input[name="topic"]').fill("big-orders");
  await form.locator('input[name="filter"]').fill("event.no_such_field > 1");
  await form.locator('input[name="key"]').fill("order_id");
  await form.getByRole("button", { name: "Create route" }).click();
  await page.locator(".notice-bad").filter({ hasText: "no_such_field" }).waitFor();
  assert.equal((await api.route.listRoutes({})).routes.length, 0, "a refused route is not stored");

  await form.locator('input[name="name"]').fill("big-orders");
  await form.locator('input[name="filter"]').fill("event.amount_cents > 10000");
  await form.getByRole("button", { name: "Create route" }).click();
  // The sink "main" reads every topic, so it will read this one too:
  // the answer names its subscription.
  await page.locator(".notice-ok").filter({ hasText: "sink-main" }).waitFor();
  const row = page.locator('[data-testid="route-row"][data-route="big-orders"]');
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /orders/);
  assert.match(text, /big-orders/);
  assert.match(text, /event\.amount_cents > 10000/);
  assert.match(text, /order_id/);
  const { routes } = await api.route.listRoutes({ subject: "orders" });
  assert.deepEqual(routes.map((r) => [r.name, r.filter, r.key]), [["big-orders", "event.amount_cents > 10000", "order_id"]]);
  await shot("06-routes");

  await row.getByTestId("route-delete").click(); // confirm() is accepted
  await row.waitFor({ state: "detached" });
  assert.equal((await api.route.listRoutes({})).routes.length, 0, "the route is deleted");
});

test("audit log: the changes made above, newest first, with who and before → after; filtered by subject", async () => {
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.waitForURL(/\/audit$/);
  const rows = page.getByTestId("audit-row");
  await rows.first().waitFor();
  const actions = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-action")));
  // The routes test created then deleted a route, the subject test changed
  // the mode twice, the seed registered two versions.
  assert.deepEqual(actions.slice(0, 6), ["route.delete", "route.create", "subject.compatibility", "subject.compatibility", "schema.register", "schema.register"]);
  const first = await rows.first().innerText();
  assert.match(first, /anonymous/);
  assert.match(first, /big-orders/);
  assert.match(first, /event\.amount_cents > 10000/, "the deleted route's definition is the before state");
  const { events } = await api.audit.listAuditEvents({ subject: "orders" });
  assert.equal(events.length, actions.length, "the page shows what the API serves");
  await shot("06b-audit");

  const form = page.getByTestId("audit-filter");
  await form.locator('input[name="subject"]').fill("no.such.subject");
  await form.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No change matches these filters.").waitFor();
  assert.match(page.url(), /\/audit\?subject=no\.such\.subject$/);
});

test("a subject of two files: the check opens the message's file; an admin registers the candidate (a refusal says why) and soft-deletes a version", async () => {
  // The message is in the second file by name: the first is its import.
  const common = 'syntax = "proto3";\npackage pay.v1;\n\nenum Method {\n  METHOD_UNSPECIFIED = 0;\n  METHOD_CARD = 1;\n}\n';
  const payment = 'syntax = "proto3";\npackage pay.v1;\n\nimport "pay/v1/a_common.proto";\n\nmessage Payment {\n  string payment_id = 1;\n  Method method = 2;\n}\n';
  await api.schema.registerSchema({
    subject: "payments",
    message: "pay.v1.Payment",
    files: [{ path: "pay/v1/a_common.proto", content: common }, { path: "pay/v1/z_payment.proto", content: payment }],
  });
  await page.goto(`${pipeline.baseUrl}/subjects/payments?tab=check`);
  const source = page.getByTestId("check-source");
  await waitFor("the candidate box prefilled", async () => (await source.inputValue()).length > 0);
  assert.equal(await page.getByTestId("check-path").inputValue(), "pay/v1/z_payment.proto");
  assert.match(await source.inputValue(), /message Payment/);

  // Refused under BACKWARD: the error and its violations, nothing registered.
  await source.fill(payment.replace("string payment_id = 1;", "int64 payment_id = 1;"));
  await page.getByTestId("check-register").click();
  await page.getByTestId("verdict").filter({ hasText: "Not registered" }).waitFor();
  assert.match(await page.locator(".check-result .notice").innerText(), /FIELD_SCALAR_KIND_CHANGED/);
  assert.equal((await api.schema.listVersions({ subject: "payments" })).versions.length, 1);

  await source.fill(payment.replace("  Method method = 2;\n", "  Method method = 2;\n  string note = 3;\n"));
  await page.getByTestId("check-register").click();
  await page.getByTestId("verdict").filter({ hasText: "Registered as version 2" }).waitFor();
  const registered = await api.schema.getSchema({ subject: "payments", version: 2 });
  assert.match(registered.schema.files.find((f) => f.path === "pay/v1/z_payment.proto").content, /string note = 3;/);
  assert.equal(registered.schema.files.length, 2, "the import went along unchanged");
  await shot("04b-subject-register");

  await page.getByTestId("tab-source").click();
  await page.getByRole("heading", { name: "Version 2" }).waitFor();
  await page.getByTestId("version-delete").click(); // confirm() is accepted
  await page.locator('[data-testid="version-item"][data-version="2"]').filter({ hasText: "deleted" }).waitFor();
  assert.match(dialogs.at(-1) ?? "", /Soft-delete version 2 of payments/);
  const { versions } = await api.schema.listVersions({ subject: "payments", includeDeleted: true });
  assert.deepEqual(versions.map((v) => [v.version, v.deleted]), [[1, false], [2, true]]);
});

test("topics & sinks: a stalled sink's growing backlog, rows written, charts", async () => {
  await page.getByRole("link", { name: "Topics & sinks" }).click();
  await page.waitForURL(/\/topics$/);
  const warehouse = page.locator('[data-testid="sink-row"][data-sink="warehouse"]');
  await warehouse.waitFor();
  await waitFor("a non-zero backlog on the warehouse sink", async () => Number(await warehouse.getByTestId("sink-lag").getAttribute("data-lag")) > 0);
  assert.equal(await warehouse.getByTestId("sink-status").innerText(), "stalled");
  assert.match(await warehouse.innerText(), /127\.0\.0\.1:1|connect/, "the last error names the unreachable database");
  const main = page.locator('[data-testid="sink-row"][data-sink="main"]');
  assert.ok(Number((await main.getByTestId("sink-rows").innerText()).replace(/,/g, "")) > 0, "the main sink wrote rows");

  const topic = page.locator('[data-testid="topic-row"][data-topic="events.orders"]');
  await topic.waitFor();
  const backlog = await topic.locator('[data-testid="subscription"]').evaluateAll((els) =>
    Object.fromEntries(els.map((e) => [e.textContent.split(/\d/)[0].trim(), Number(e.getAttribute("data-backlog"))])),
  );
  assert.ok(backlog["sink-warehouse"] > 0, `backlogs: ${JSON.stringify(backlog)}`);
  // p50 / p95 / p99 from the server's histograms: bus publish per topic,
  // end to end per sink; none yet for a sink that wrote nothing.
  await waitFor("latency quantiles of the main sink", async () => /ms|s \//.test(await main.getByTestId("sink-latency").innerText()));
  assert.match(await topic.getByTestId("topic-latency").innerText(), /^[\d.]+ m?s \/ [\d.]+ m?s \/ [\d.]+ m?s$/);
  assert.equal(await warehouse.getByTestId("sink-latency").innerText(), "–");

  // Charts draw once there are two readings; wait for a few more so the
  // screenshot shows the backlog growing. "attached", not visible: a sink
  // that keeps up draws a flat line at zero, a polyline with no height,
  // which the browser counts as hidden.
  await page.locator('[data-testid="lag-chart"] polyline').first().waitFor({ state: "attached" });
  await page.locator('[data-testid="throughput-chart"] polyline').first().waitFor({ state: "attached" });
  const lagAt = async () => Number(await warehouse.getByTestId("sink-lag").getAttribute("data-lag"));
  const first = await lagAt();
  await waitFor("the backlog to grow while events keep coming", async () => (await lagAt()) > first, { timeoutMs: 20_000 });
  await waitFor("fifteen readings on the lag chart", async () => {
    const pts = await page.locator('[data-testid="lag-chart"] polyline').first().getAttribute("points");
    return pts && pts.trim().split(/\s+/).length >= 15;
  }, { timeoutMs: 60_000 });
  await shot("07-topics-sinks");

  // What each number means on the embedded bus: sink-main reads every
  // topic through one consumer, so its number is its whole backlog, marked
  // so on each topic; sink-warehouse reads events.orders only; the
  // dead-letter topic says whose it is and counts dead-lettered events.
  assert.match(await page.getByTestId("sinks-table").locator("thead").innerText(), /WAITING FOR THIS SINK/i);
  const subs = await topic.locator('[data-testid="subscription"]').evaluateAll((els) =>
    Object.fromEntries(els.map((e) => [e.textContent.split(/\d/)[0].trim(), [e.getAttribute("data-spans"), e.textContent]])),
  );
  assert.equal(subs["sink-main"]?.[0], "true", JSON.stringify(subs));
  assert.match(subs["sink-main"][1], /all its topics/);
  assert.equal(subs["sink-warehouse"]?.[0], "false", JSON.stringify(subs));
  assert.ok(Number((await topic.getByTestId("topic-stored").innerText()).replace(/,/g, "")) > 0, "events.orders stores messages");
  const dlq = page.locator('[data-testid="topic-row"][data-dead-letter-of="main"]');
  assert.equal(await dlq.getAttribute("data-topic"), "events.main-dlq");
  assert.match(await dlq.getByTestId("dead-letter-of").innerText(), /dead-letter topic of main/);
  assert.match(await dlq.locator('[data-testid="subscription"][data-spans="false"]').innerText(), /sink-main-dlq.*dead-lettered/s);
  await page.getByTestId("spans-note").waitFor();

  // The server keeps the series (a sample every 5 s): a reload draws the
  // last minutes, more readings than the page's own polls since the
  // reload (each adds one) could have drawn.
  const { samples } = await api.status.getHistory({});
  assert.ok(samples.length >= 4, `the server's history holds ${samples.length} samples`);
  assert.ok(samples.at(-1).sinks.some((s) => s.sink === "warehouse" && s.lag > 0n), "the history has the warehouse backlog");
  let polls = 0;
  const countPolls = (req) => {
    if (req.url().endsWith("/pipeline.v1.StatusService/GetStatus")) polls++;
  };
  page.on("request", countPolls);
  try {
    await page.reload();
    await waitFor("the server's readings on the lag chart after a reload", async () => {
      const pts = await page.locator('[data-testid="lag-chart"] polyline').first().getAttribute("points", { timeout: 500 });
      return pts && pts.trim().split(/\s+/).length >= polls + 3;
    }, { timeoutMs: 10_000 });
  } finally {
    page.off("request", countPolls);
  }
  await page.emulateMedia({ colorScheme: "dark" });
  await shot("07-topics-sinks-dark");
  await page.emulateMedia({ colorScheme: "light" });
});

test("topics & sinks: a table that cannot take a schema change is held, with its subject and reason; the rest flows", async () => {
  // ledger v1 stores amount as text; v2 (registered under NONE) makes it an
  // int64, which the text column cannot hold: the main sink holds ledger's
  // table only, and keeps writing orders.
  const ledgerV1 = 'syntax = "proto3";\npackage books.v1;\n\nmessage Entry {\n  string entry_id = 1;\n  string amount = 2;\n}\n';
  const ledgerV2 = ledgerV1.replace("string amount = 2;", "int64 amount = 2;");
  const register = (content) => api.schema.registerSchema({ subject: "ledger", message: "books.v1.Entry", files: [{ path: "books/v1/entry.proto", content }] });
  await register(ledgerV1);
  await api.ingest.publish({ subject: "ledger", eventId: "ledger-1", payload: { case: "json", value: JSON.stringify({ entryId: "l1", amount: "12" }) } });
  await api.schema.updateSubjectConfig({ subject: "ledger", compatibility: Compatibility.NONE });
  await register(ledgerV2);
  await api.ingest.publish({ subject: "ledger", eventId: "ledger-2", payload: { case: "json", value: JSON.stringify({ entryId: "l2", amount: "34" }) } });

  const heldRow = page.locator('[data-testid="held-row"][data-sink="main"][data-subject="ledger"]');
  await heldRow.waitFor({ timeout: 30_000 });
  assert.equal(await heldRow.getAttribute("data-table"), "ledger");
  assert.match(await heldRow.getByTestId("held-reason").innerText(), /cannot hold/);
  assert.ok(Number(await heldRow.getByTestId("held-events").innerText()) >= 1, "the held events are counted");
  const main = page.locator('[data-testid="sink-row"][data-sink="main"]');
  assert.equal(await main.getByTestId("sink-held").innerText(), "1 held");
  const rowsOfMain = async () => Number((await main.getByTestId("sink-rows").innerText()).replace(/,/g, ""));
  const before = await rowsOfMain();
  await waitFor("the main sink to keep writing orders", async () => (await rowsOfMain()) > before, { timeoutMs: 20_000 });
  assert.equal(await main.getByTestId("sink-status").innerText(), "running");
  const { sinks } = await api.sink.listSinks({});
  const held = sinks.find((s) => s.name === "main").heldTables;
  assert.deepEqual(held.map((t) => [t.subject, t.table]), [["ledger", "ledger"]]);
  await shot("07-topics-sinks-held");
});

test("topics & sinks: an admin replays a sink from the start, emptying its tables; the answer says where it starts", async () => {
  await page.getByRole("link", { name: "Topics & sinks" }).click();
  await page.waitForURL(/\/topics$/);
  const main = page.locator('[data-testid="sink-row"][data-sink="main"]');
  await main.getByTestId("sink-replay").click();
  assert.equal(await page.getByTestId("replay-sink").inputValue(), "main", "the row's button chooses its sink");
  await page.getByTestId("replay-truncate").check();
  await page.getByTestId("replay-submit").click(); // confirm() is accepted
  const status = page.getByTestId("replay-status");
  await status.locator(".notice-ok, .notice-warn").waitFor({ timeout: 30_000 });
  assert.match(await status.innerText(), /replaying from the oldest retained event.*table\(s\) emptied first/s);
  const { sinks } = await api.sink.listSinks({});
  assert.ok(sinks.find((s) => s.name === "main"), "the sink is still listed");
  await waitFor("the main sink to run again after the replay", async () => {
    const { sinks } = await api.sink.listSinks({});
    return sinks.find((s) => s.name === "main").status === "running";
  });
  // A time in the future is refused with the server's reason.
  await page.getByTestId("replay-time").fill("2999-01-01T00:00:00");
  await page.getByTestId("replay-truncate").uncheck();
  await page.getByTestId("replay-submit").click();
  await status.locator(".notice-bad").filter({ hasText: "future" }).waitFor();
  await shot("07-topics-sinks-replay");
});

test("health: bus, registry and sink databases; version and uptime", async () => {
  await page.getByTestId("health-pill").click();
  await page.waitForURL(/\/health$/);
  await page.getByTestId("bus-health").waitFor();
  assert.equal(await page.getByTestId("bus-health").getAttribute("data-ok"), "true");
  assert.equal(await page.getByTestId("registry-health").getAttribute("data-ok"), "true");
  assert.equal(await page.locator('[data-testid="db-row"][data-sink="main"]').getAttribute("data-ok"), "true");
  assert.equal(await page.locator('[data-testid="db-row"][data-sink="warehouse"]').getAttribute("data-ok"), "false");
  assert.notEqual((await page.getByTestId("health-version").innerText()).trim(), "");
  assert.match(await page.getByTestId("health-pill").innerText(), /1 sink database down/);
  assert.match(await page.getByTestId("no-auth-note").innerText(), /Auth is off/);
  await shot("08-health");
});

test("420 px wide: the navigation wraps without clipping, wide tables scroll inside their box", async () => {
  await page.setViewportSize({ width: 420, height: 900 });
  try {
    // Each page, and whether one of its tables is wider than 420 px.
    for (const [path, wide] of [["/topics", true], ["/audit", true], ["/subjects/orders?tab=refused", false]]) {
      await page.goto(`${pipeline.baseUrl}${path}`);
      await page.locator(".table-wrap table").first().waitFor();
      const m = await page.evaluate(() => {
        const vw = document.documentElement.clientWidth;
        const clipped = [];
        for (const el of document.querySelectorAll(".topbar, .topbar *")) {
          const r = el.getBoundingClientRect();
          if (el.scrollWidth > el.clientWidth + 1 || r.left < -0.5 || r.right > vw + 0.5) clipped.push(`${el.className || el.tagName}: ${el.textContent.trim().slice(0, 20)}`);
        }
        const wraps = [...document.querySelectorAll(".table-wrap")].map((w) => ({
          overflowX: getComputedStyle(w).overflowX,
          inside: w.getBoundingClientRect().right <= vw + 0.5,
          scrolls: w.scrollWidth > w.clientWidth,
        }));
        return { pageWidth: document.documentElement.scrollWidth, vw, clipped, wraps };
      });
      assert.deepEqual(m.clipped, [], `${path}: clipped in the top bar`);
      assert.ok(m.pageWidth <= m.vw, `${path}: the page is ${m.pageWidth} px wide in a ${m.vw} px window`);
      assert.ok(m.wraps.every((w) => w.overflowX === "auto" && w.inside), `${path}: tables: ${JSON.stringify(m.wraps)}`);
      if (wide) assert.ok(m.wraps.some((w) => w.scrolls), `${path}: a wide table scrolls in its box: ${JSON.stringify(m.wraps)}`);
      if (path === "/topics") await shot("09-narrow-topics");
    }
    assert.equal(await page.getByRole("link", { name: "Health", exact: true }).innerText(), "Health");
  } finally {
    await page.setViewportSize({ width: 1360, height: 900 });
  }
});

test("quarantine: refused events grouped by rule, searched, replayed after the schema gains the field", async () => {
  // A subject of its own: the tests above count the orders' versions and audit entries.
  await api.schema.registerSchema({ subject: "returns", message: MESSAGE, files: [{ path: FILE, content: V1 }] });
  const refuse = async (eventId, order) => {
    await assert.rejects(api.ingest.publish({ subject: "returns", eventId, payload: { case: "json", value: JSON.stringify(order) } }));
  };
  await refuse("r-1", { orderId: "r-1", coupon: "SAVE10" }); // a field v1 lacks
  await refuse("r-2", { orderId: "" });
  await page.goto(`${pipeline.baseUrl}/subjects/returns?tab=refused`);
  const chip = (rule) => page.locator(`[data-testid="refused-rule"][data-rule="${rule}"]`);
  await chip("decode").waitFor();
  assert.equal((await chip("string.min_len").getByTestId("refused-rule-count").innerText()).trim(), "1");
  const rows = page.getByTestId("refused-row");
  const shown = async () => (await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-event")))).join(",");
  await chip("decode").click();
  await waitFor("only the decode refusal", async () => (await shown()) === "r-1");
  await page.getByTestId("refused-search").fill("SAVE10");
  await page.getByTestId("refused-filter").getByRole("button", { name: "Search" }).click();
  const r1 = page.locator('[data-testid="refused-row"][data-event="r-1"]');
  await r1.locator("summary", { hasText: "payload" }).click();
  assert.match(await r1.locator("pre.payload").innerText(), /SAVE10/);
  await refuse("r-3", { orderId: "r-3", coupon: "SAVE10" });
  await waitFor("r-3 on top after a refresh", async () => (await shown()) === "r-3,r-1");
  assert.equal(await r1.locator("details").evaluate((d) => d.open), true, "the opened payload is still open after the refresh");

  await api.schema.registerSchema({ subject: "returns", message: MESSAGE, files: [{ path: FILE, content: V2 }] });
  await page.getByTestId("replay").click();
  await page.getByTestId("replay-summary").filter({ hasText: "2 published" }).waitFor();
  const outcomes = await page.getByTestId("replay-result").evaluateAll((trs) => trs.map((tr) => `${tr.getAttribute("data-event")}=${tr.getAttribute("data-outcome")}`));
  assert.deepEqual(outcomes, ["r-1=published", "r-3=published"]);
  await page.getByText("No refused event matches the filter.").waitFor();
  await shot("09-quarantine-replay");
  const left = await api.quarantine.listRefused({ filter: { subject: "returns" } });
  assert.deepEqual(left.events.map((e) => e.eventId), ["r-2"], "published events leave the quarantine");
});

test("no script errors in the whole session", () => {
  assert.deepEqual(pageErrors, []);
});
