// Builds dist/hivestream.min.js from src/hivestream.js with terser, the file
// the collector serves at GET /v2.0/sdk.js (it is embedded in the binary, so
// it is committed). `--check` fails when the committed build is stale.
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { minify } from "terser";

const src = readFileSync(new URL("./src/hivestream.js", import.meta.url), "utf8");
const out = await minify(src, {
  module: true,
  ecma: 2020,
  compress: { passes: 2 },
  mangle: true,
  format: { comments: false, preamble: "// hivestream web SDK (Apache-2.0): see sdk/web/README.md" },
});
const code = out.code + "\n";
const dist = new URL("./dist/hivestream.min.js", import.meta.url);
const size = `${src.length} bytes source, ${code.length} minified, ${gzipSync(code, { level: 9 }).length} minified+gzipped`;
if (process.argv.includes("--check")) {
  const committed = readFileSync(dist, "utf8");
  if (committed !== code) {
    console.error("dist/hivestream.min.js is stale: run `npm run build` in sdk/web and commit it");
    process.exit(1);
  }
  console.log(`sdk size: ${size}`);
} else {
  writeFileSync(dist, code);
  console.log(`wrote dist/hivestream.min.js: ${size}`);
}
