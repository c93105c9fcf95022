// startPipeline builds and runs the real `pipeline serve` for the browser
// tests: a fresh data directory, a port chosen by the kernel (--addr
// 127.0.0.1:0, the URL read from the server's own start-up line), and a
// stop that waits for a clean shutdown.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** run runs a command to completion and rejects on a non-zero exit. */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "inherit", "inherit"], ...opts });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(" ")}: exit ${code ?? signal}`));
    });
  });
}

/** waitFor polls fn until it returns a truthy value or the deadline passes. */
export async function waitFor(what, fn, { timeoutMs = 30_000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${lastErr.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * buildPipeline compiles ./cmd/pipeline into dir, unless PIPELINE_BIN names
 * a binary already built (scripts/test-web.sh builds once for all tests).
 */
export async function buildPipeline(repoRoot, dir) {
  if (process.env.PIPELINE_BIN) return process.env.PIPELINE_BIN;
  const bin = join(dir, "pipeline");
  await run("go", ["build", "-o", bin, "./cmd/pipeline"], { cwd: repoRoot });
  return bin;
}

/**
 * startPipeline runs `bin serve` with config (YAML text) in workDir and
 * resolves once /healthz answers 200. Its stderr goes to logPath.
 */
export async function startPipeline({ bin, workDir, config, logPath }) {
  await mkdir(workDir, { recursive: true });
  const configPath = join(workDir, "pipeline.yaml");
  await writeFile(configPath, config);
  const log = createWriteStream(logPath);
  const child = spawn(bin, ["serve", "--config", configPath, "--addr", "127.0.0.1:0", "--data-dir", join(workDir, "data")], {
    cwd: workDir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = code ?? signal;
      resolve(exited);
    });
    child.on("error", (err) => {
      exited = err.message; // never started: there is nothing to stop
      resolve(exited);
    });
  });
  let stderr = "";
  let found = false;
  const url = new Promise((resolve, reject) => {
    child.stderr.on("data", (chunk) => {
      log.write(chunk);
      if (found) return;
      stderr += chunk;
      const m = /serving on (http:\/\/[0-9.:]+)/.exec(stderr);
      if (m) {
        found = true;
        resolve(m[1]);
      }
    });
    child.stdout.on("data", (chunk) => log.write(chunk));
    child.on("error", reject);
    exit.then((code) => reject(new Error(`pipeline exited (${code}) before serving; see ${logPath}`)));
  });
  async function stop() {
    if (exited !== null) {
      log.end();
      return exited;
    }
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const code = await exit;
    clearTimeout(timer);
    log.end();
    return code;
  }
  try {
    let timer;
    const baseUrl = await Promise.race([
      url,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`pipeline did not print its URL in 60 s; see ${logPath}`)), 60_000);
      }),
    ]).finally(() => clearTimeout(timer));
    await waitFor("GET /healthz 200", async () => (await fetch(`${baseUrl}/healthz`)).ok, { timeoutMs: 60_000 });
    return { baseUrl, stop, pid: child.pid };
  } catch (err) {
    await stop();
    throw err;
  }
}
