// Bundle web/src into app/datahub/static: console-<hash>.js/.css and index.html naming them.
// `npm run build` (once) or `npm run watch` (rebuild on change). No CDN at run time.
// Deterministic: the same sources and lockfile give byte-identical files (same hashes).
import { build, context } from "esbuild";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const watch = args.includes("--watch");
// --outdir DIR: build elsewhere (tests/browser compares it with the committed bundle)
const outArg = args.indexOf("--outdir");
const out = outArg >= 0 ? resolve(args[outArg + 1]) : join(here, "..", "app", "datahub", "static");

const options = {
  entryPoints: { console: join(here, "src", "main.js") },
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  minify: !watch,
  sourcemap: false,
  legalComments: "eof", // keeps Lightweight Charts' Apache-2.0 notice in the bundle
  entryNames: "[name]-[hash]",
  outdir: out,
  metafile: true,
  logLevel: "warning",
  conditions: ["production"],
  define: { "process.env.NODE_ENV": '"production"' },
  plugins: [
    {
      name: "index-html",
      setup(b) {
        b.onStart(async () => {
          await mkdir(out, { recursive: true });
          // only the files this build owns: older bundles and index.html
          for (const name of await readdir(out)) {
            if (/^console-[A-Z0-9]+\.(js|css)$/i.test(name)) await rm(join(out, name));
          }
        });
        b.onEnd(async (result) => {
          if (result.errors.length) return;
          const files = Object.keys(result.metafile.outputs).map((p) => basename(p));
          const js = files.find((f) => f.endsWith(".js"));
          const css = files.find((f) => f.endsWith(".css"));
          const html = (await readFile(join(here, "index.html"), "utf8"))
            .replace("%JS%", js)
            .replace("%CSS%", css);
          await writeFile(join(out, "index.html"), html);
          const sizes = Object.entries(result.metafile.outputs)
            .map(([p, o]) => `${basename(p)} ${(o.bytes / 1024).toFixed(1)} KiB`)
            .join(", ");
          console.log(`console: built ${sizes} -> ${out}`);
        });
      },
    },
  ],
};

if (watch) {
  const ctx = await context(options);
  await ctx.watch();
  console.log("console: watching web/src (Ctrl-C to stop)");
} else {
  await build(options);
}
