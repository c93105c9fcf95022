// Vite builds the dashboard into dist/, which the Go binary embeds
// (web/web.go). The output must be a pure function of the sources and the
// locked dependencies: scripts/test-web.sh rebuilds it and fails when it
// differs from the committed dist/. Content-hashed names are stable; no
// timestamps, no source maps with absolute paths.
import { defineConfig } from "vite";

// PIPELINE_URL points `npm run dev` at a running `pipeline serve`.
const api = process.env.PIPELINE_URL ?? "http://127.0.0.1:7400";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    chunkSizeWarningLimit: 200,
  },
  server: {
    proxy: {
      // Every Connect procedure lives under /pipeline.v1.<Service>/.
      "^/pipeline\\.v1\\.": { target: api, changeOrigin: true },
    },
  },
});
