// A real pipeline server for the tests: the `pipeline serve` binary
// (PIPELINE_BIN, built by scripts/test-sdk.sh; else `go build` here) on
// the embedded defaults in a data dir of its own, killable and restartable.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { DescMessage } from "@bufbuild/protobuf";
import { connect } from "../src/node.js";

export const repo = resolve(import.meta.dirname, "../../../..");

function pipelineBinary(): string {
  if (process.env.PIPELINE_BIN) return process.env.PIPELINE_BIN;
  const out = join(mkdtempSync(join(tmpdir(), "pipeline-bin-")), "pipeline");
  execFileSync("go", ["build", "-o", out, "./cmd/pipeline"], { cwd: repo, stdio: "inherit" });
  return out;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() => (addr && typeof addr === "object" ? ok(addr.port) : fail(new Error("no port"))));
    });
  });
}

let binary: string | undefined;

export class Server {
  readonly dataDir = mkdtempSync(join(tmpdir(), "pipeline-sdk-ts-"));
  private proc?: ChildProcess;
  private constructor(
    private readonly bin: string,
    readonly port: number,
    private readonly config?: string,
    private readonly ca?: Buffer,
  ) {}

  get url(): string {
    return `${this.ca ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  /** A server on the embedded defaults; with tls, serving HTTPS with that certificate (trusted as ca). */
  static async start(tls?: { certFile: string; keyFile: string }, moreConfig = ""): Promise<Server> {
    binary ??= pipelineBinary();
    let config: string | undefined;
    let ca: Buffer | undefined;
    if (tls) {
      config = join(mkdtempSync(join(tmpdir(), "pipeline-config-")), "pipeline.yaml");
      writeFileSync(config, `tls:\n  cert_file: ${tls.certFile}\n  key_file: ${tls.keyFile}\n${moreConfig}`);
      ca = readFileSync(tls.certFile);
    }
    const s = new Server(binary, await freePort(), config, ca);
    await s.start();
    return s;
  }

  private healthy(): Promise<boolean> {
    return new Promise((ok) => {
      const req = (this.ca ? https : http).get(`${this.url}/healthz`, { ca: this.ca }, (res) => {
        res.resume();
        ok(res.statusCode === 200);
      });
      req.on("error", () => ok(false));
    });
  }

  async start(): Promise<void> {
    const args = ["serve", "--addr", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir, "--log-level", "warn"];
    if (this.config) args.push("--config", this.config);
    const proc = spawn(this.bin, args, { stdio: ["ignore", "inherit", "inherit"] });
    this.proc = proc;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`pipeline serve exited ${proc.exitCode}`);
      if (await this.healthy()) return;
      if (Date.now() > deadline) throw new Error("pipeline serve did not become healthy in 60 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL: no graceful anything. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await exited;
    this.proc = undefined;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Rows of the SQLite sink, through Debian's sqlite3. */
  query(sql: string): string[][] {
    const out = execFileSync("sqlite3", ["-readonly", "-cmd", ".timeout 5000", "-separator", "\t", join(this.dataDir, "events.db"), sql], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    return out
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => l.split("\t"));
  }

  count(table: string): number {
    try {
      return Number(this.query(`SELECT COUNT(*) FROM "${table}"`)[0][0]);
    } catch {
      return 0; // the sink has not made the table yet
    }
  }

  /** Registers sdk/testdata/order.proto under subject; returns OrderCreated's schema read back from the server. */
  async register(subject: string, token?: string): Promise<DescMessage> {
    const clients = connect(this.url, { tls: this.ca ? { ca: this.ca } : undefined, token });
    const content = readFileSync(join(repo, "sdk/testdata/order.proto"), "utf8");
    const reg = await clients.schema.registerSchema({
      subject,
      message: "shop.v1.OrderCreated",
      files: [{ path: "shop/v1/order.proto", content }],
    });
    const got = await clients.schema.getSchema({ schemaId: reg.schemaId });
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, got.schema!.fileDescriptorSet));
    const desc = registry.getMessage("shop.v1.OrderCreated");
    if (!desc) throw new Error("no shop.v1.OrderCreated in the schema");
    return desc;
  }
}

/** Polls check until it returns true, or fails after timeoutMs. */
export async function waitFor(what: string, timeoutMs: number, check: () => boolean | string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: boolean | string = false;
  while (Date.now() < deadline) {
    last = check();
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`waiting for ${what}: ${last}`);
}
