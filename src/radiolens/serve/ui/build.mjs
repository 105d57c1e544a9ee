// Bundle the radiolens viewer (Cornerstone3D) into ../static/viewer/: `make ui` runs
// `npm ci && node build.mjs`. The output is deterministic: two builds, also after a fresh
// `npm ci`, give identical bytes. Besides the two scripts it writes
// THIRD_PARTY_LICENSES.txt: the name, version and licence text of every bundled package.
import { build } from "esbuild";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const outdir = fileURLToPath(new URL("../static/viewer/", import.meta.url));

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
const result = await build({
  absWorkingDir: here,
  entryPoints: {
    viewer: "src/viewer.js",
    // the loader builds its worker's URL from import.meta.url: keep this exact name beside it
    decodeImageFrameWorker:
      "node_modules/@cornerstonejs/dicom-image-loader/dist/esm/decodeImageFrameWorker.js",
  },
  outdir,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  sourcemap: false,
  metafile: true,
  banner: { js: "/*! radiolens viewer, built by src/radiolens/serve/ui/build.mjs; bundled packages and their licences: THIRD_PARTY_LICENSES.txt */" },
  external: ["fs", "path"], // a Node-only branch of the codec glue
  alias: { xmlbuilder2: "./src/xmlbuilder2-stub.js" }, // vtk.js's XML I/O, never used here
  logLevel: "warning",
});

// -- the licences of what went into the bundle --------------------------------------
const packages = new Set();
for (const output of Object.values(result.metafile.outputs)) {
  for (const input of Object.keys(output.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) packages.add(m[1]);
  }
}
const sections = [];
for (const dir of [...packages].sort()) {
  const meta = JSON.parse(await readFile(join(here, dir, "package.json"), "utf8"));
  const names = (await readdir(join(here, dir))).filter((f) => /^(licen[cs]e|copying)/i.test(f)).sort();
  const text = names.length ? await readFile(join(here, dir, names[0]), "utf8")
    : "(no licence file in the package; see its package.json)";
  sections.push(`${meta.name} ${meta.version} — ${meta.license || "see below"}\n\n${text.trim()}\n`);
}
await writeFile(join(outdir, "THIRD_PARTY_LICENSES.txt"),
  "Packages bundled into viewer.js and decodeImageFrameWorker.js\n\n" +
  sections.join("\n" + "=".repeat(78) + "\n\n"));
