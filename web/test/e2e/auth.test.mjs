// End-to-end with auth on: the real pipeline binary with two static
// tokens (an admin's and a viewer's). The dashboard asks for a token,
// keeps it in sessionStorage only, and shows a viewer no delete or
// change buttons and no refused payloads (the server strips them too).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { importTS } from "../support/load-ts.mjs";
import { buildPipeline, startPipeline } from "../support/pipeline.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, "../..");
const repoRoot = resolve(webDir, "..");
const artifacts = join(repoRoot, "artifacts");
const shots = join(artifacts, "screenshots");
const chromiumPath = process.env.PIPELINE_TEST_CHROMIUM ?? "/usr/bin/chromium";

const PROTO = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message OrderCreated {
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  string note = 2;
}
`;

const token = () => `pl_${randomBytes(32).toString("base64url")}`;
const sha256 = (t) => createHash("sha256").update(t).digest("hex");
const adminToken = token();
const viewerToken = token();

let pipeline;
let workDir;
let browser;
let admin; // API clients with the admin's token
const pageErrors = [];

before(async () => {
  await mkdir(shots, { recursive: true });
  const generated = await importTS(join(webDir, "test/support/client.ts"));
  workDir = await mkdtemp(join(tmpdir(), "pipeline-auth-e2e-"));
  const bin = await buildPipeline(repoRoot, workDir);
  const config = `
default_sink: false
auth:
  tokens:
    - {name: e2e-admin, role: admin, sha256: ${sha256(adminToken)}}
    - {name: e2e-viewer, role: viewer, sha256: ${sha256(viewerToken)}}
`;
  pipeline = await startPipeline({ bin, workDir, config, logPath: join(artifacts, "auth-e2e-pipeline.log") });
  admin = generated.clients(pipeline.baseUrl, adminToken);
  await admin.schema.registerSchema({ subject: "orders", message: "shop.v1.OrderCreated", files: [{ path: "shop/v1/order.proto", content: PROTO }] });
  await admin.route.createRoute({ route: { name: "all-orders", subject: "orders", topic: "orders-copy" } });
  await assert.rejects(
    admin.ingest.publish({ subject: "orders", eventId: "refused-1", payload: { case: "json", value: JSON.stringify({ orderId: "", note: "secret-payload-42" }) } }),
  );
  const anonymous = generated.clients(pipeline.baseUrl);
  await assert.rejects(anonymous.schema.listSubjects({}), (err) => err.code === generated.Code.Unauthenticated);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"], headless: true });
});

after(async () => {
  await browser?.close();
  const code = await pipeline?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
  if (pipeline) assert.equal(code, 0, "pipeline serve should exit 0 on SIGTERM");
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${msg.text()}`);
  });
  page.on("dialog", (d) => void d.accept());
  return page;
}

async function signIn(page, t) {
  await page.getByTestId("sign-in").waitFor();
  await page.getByTestId("token-input").fill(t);
  await page.getByTestId("sign-in-submit").click();
}

test("a viewer signs in with a token and sees no delete buttons and no payloads", async () => {
  const page = await newPage();
  await page.goto(`${pipeline.baseUrl}/`);
  await signIn(page, "pl_not-a-token-anyone-has");
  await page.locator(".notice-bad").filter({ hasText: "unknown" }).waitFor();

  await signIn(page, viewerToken);
  await page.getByTestId("who-name").filter({ hasText: "e2e-viewer" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("pipeline.token")), viewerToken);
  assert.equal(await page.evaluate(() => localStorage.length), 0, "the token is not kept past the session");
  assert.ok(!(await page.context().cookies()).length, "no cookie");
  await page.getByRole("link", { name: "orders" }).first().waitFor();

  await page.goto(`${pipeline.baseUrl}/routes`); // a reload: the token stays for the tab
  await page.locator('[data-testid="route-row"][data-route="all-orders"]').waitFor();
  assert.equal(await page.getByTestId("route-delete").count(), 0, "no delete button for a viewer");
  assert.equal(await page.getByTestId("route-form").count(), 0, "no new-route form for a viewer");
  await page.goto(`${pipeline.baseUrl}/topics`);
  await page.getByText("No sink is configured").waitFor();
  assert.equal(await page.getByTestId("replay-form").count(), 0, "no replay form for a viewer (sinks.admin)");

  await page.goto(`${pipeline.baseUrl}/subjects/orders?tab=refused`);
  await page.getByTestId("refused-row").first().waitFor();
  assert.equal(await page.locator("pre.payload").count(), 0);
  assert.doesNotMatch(await page.locator("main").innerText(), /secret-payload-42/);
  assert.equal(await page.getByTestId("mode-save").count(), 0, "no compatibility change for a viewer");
  assert.ok(await page.getByTestId("mode-select").isDisabled());
  assert.equal(await page.getByTestId("tab-check").count(), 0, "no compatibility check (schema.check) for a viewer");
  await page.getByTestId("tab-source").click();
  await page.getByTestId("source-file").first().waitFor();
  assert.equal(await page.getByTestId("version-delete").count(), 0, "no version delete (schema.admin) for a viewer");
  await page.screenshot({ path: join(shots, "auth-viewer-refused.png"), fullPage: true });

  await page.getByTestId("sign-out").click();
  await page.getByTestId("sign-in").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("pipeline.token")), null);
  await page.context().close();
});

test("an admin sees the refused payload and may delete a route", async () => {
  const page = await newPage();
  await page.goto(`${pipeline.baseUrl}/subjects/orders?tab=refused`);
  await signIn(page, adminToken);
  await page.getByTestId("who-name").filter({ hasText: "e2e-admin" }).waitFor();
  const row = page.getByTestId("refused-row").first();
  await row.waitFor();
  await row.locator("summary", { hasText: "payload" }).click();
  assert.match(await row.locator("pre.payload").innerText(), /secret-payload-42/);
  assert.equal(await page.getByTestId("mode-save").count(), 1);
  await page.getByTestId("tab-source").click();
  await page.getByTestId("version-delete").waitFor();
  await page.getByTestId("tab-check").click();
  await page.getByTestId("check-register").waitFor();

  await page.goto(`${pipeline.baseUrl}/routes`);
  const route = page.locator('[data-testid="route-row"][data-route="all-orders"]');
  await route.getByTestId("route-delete").click();
  await route.waitFor({ state: "detached" });
  assert.equal((await admin.route.listRoutes({})).routes.length, 0);

  await page.goto(`${pipeline.baseUrl}/topics`);
  await page.getByTestId("replay-form").waitFor(); // sinks.admin
  await page.context().close();
});

test("no script errors with auth on", () => {
  assert.deepEqual(pageErrors, []);
});
