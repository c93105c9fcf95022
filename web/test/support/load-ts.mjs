// importTS bundles a TypeScript module with esbuild (already a dependency
// of Vite) and imports it, so the tests run the real sources on plain Node
// without a separate TypeScript runner.
import { build } from "esbuild";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export async function importTS(entry) {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    write: false,
    logLevel: "silent",
  });
  const dir = await mkdtemp(join(tmpdir(), "pipeline-web-test-"));
  const file = join(dir, "module.mjs");
  await writeFile(file, result.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
