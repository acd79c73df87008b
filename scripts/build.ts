/**
 * `npm run build` (after `tsc --noEmit`): dist/src/cli.js, the CLI bundled
 * by esbuild with the npm packages it uses, plus one chunk per lazy
 * `import()` (code splitting), so `healthcheck` still loads only cli.js and
 * a static-platform `once` never loads the etcd or Rancher code.
 *
 * Why a bundle: resolving and loading some 600 files of node_modules was
 * most of the CLI's start-up (docs/performance.md, "Start-up"); one file per
 * import() halves the CPU to the first ACME order.
 *
 * Left out of the bundle (EXTERNAL_PACKAGES) and loaded from node_modules as
 * before: etcd3 and gRPC read their .proto files from their own package
 * directory at run time, and are loaded only in cluster mode.
 *
 *   npm run build
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Packages loaded from node_modules at run time rather than bundled. */
export const EXTERNAL_PACKAGES: readonly string[] = [
  'etcd3',
  '@grpc/grpc-js',
  '@grpc/proto-loader',
];

/**
 * The bundled CommonJS packages call require() for Node's built-ins; an ES
 * module has no require, so each output file gets one.
 */
const REQUIRE_BANNER =
  "import { createRequire as __createRequire } from 'node:module';\n" +
  'const require = __createRequire(import.meta.url);';

/**
 * Node's built-in modules are require()d, never imported as ES modules: an
 * ES import of one reads every export to build the module's namespace, its
 * lazy getters included, and node:http's (WebSocket, MessageEvent) load
 * undici, node:tls's rootCertificates parses every root certificate,
 * node:crypto's webcrypto... `import http from 'node:http'` costs three times
 * the instructions of `node -e 0` (valgrind, Node 24); require('node:http')
 * a fifth of it. Each static ES import of a built-in becomes a CommonJS
 * module `module.exports = require(...)`, whose exports esbuild reads on use
 * only. Not `await import('node:...')`: esbuild gives the chunk of such a
 * module only a default export, and the named ones would be undefined.
 */
const builtinsThroughRequire: Plugin = {
  name: 'builtins-through-require',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (args) =>
      isBuiltin(args.path) && args.kind === 'import-statement'
        ? { path: args.path, namespace: 'builtin-require' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin-require' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/** One source text replacement of a bundled package's file; the build fails if `from` is gone. */
interface SourcePatch {
  /** The file, relative to node_modules. */
  readonly file: string;
  readonly from: string;
  readonly to: string;
  /** `to` replaces the whole file (which must still contain `from`). */
  readonly whole?: boolean;
  /** Why, with the figure. */
  readonly why: string;
}

/**
 * Start-up patches of bundled packages: each removes work the CLI does
 * before its first ACME order but never needs (`npx tsx
 * scripts/bench-first-order.ts --cpu-prof DIR` prints what the start-up
 * spends its time on). A patch whose text is no longer found fails the
 * build, so an upgrade of the package cannot silently drop it.
 */
export const SOURCE_PATCHES: readonly SourcePatch[] = [
  {
    // zod's `z` namespace carries every locale (`z.locales`): 366 kB of
    // the bundle's 751 kB of zod, parsed and evaluated at start-up. The
    // schema's messages are English (zod's default, set from locales/en.js
    // by classic/schemas.js, which imports it directly).
    file: 'zod/v4/locales/index.js',
    from: 'export { default as en } from "./en.js";',
    to: 'export { default as en } from "./en.js";\n',
    whole: true,
    why: 'zod locales other than English',
  },
  {
    // axios builds its fetch adapter at load time (getFetch() at top
    // level), which reads globalThis.fetch/Request/Response and so loads
    // Node's undici (about 10 ms of CPU). The default adapter list picks
    // `http` first in Node; a caller asking for `fetch` still gets it, built
    // on first use (knownAdapters.fetch.get is getFetch itself).
    file: 'axios/dist/node/axios.cjs',
    from: '\ngetFetch();\n',
    to: '\n',
    why: "axios's fetch adapter built at load",
  },
  {
    // acme-client's crypto module loads @peculiar/x509 (with asn1js,
    // tsyringe, reflect-metadata and nine @peculiar/asn1-* packages: 650 kB
    // of the bundle, 25 to 40 ms of CPU) at load, for what it needs at the
    // earliest when the order is finalized (the CSR); the JWS signing before
    // it is node:crypto. Here it is a chunk of its own, imported by the
    // async functions that use it first (createCsr, createAlpnCertificate),
    // its crypto provider set then. A synchronous use before (acme-client's
    // getPemBodyAsB64u, readCertificateInfo... on their own; this code uses
    // them only after createCsr) throws saying so.
    file: 'acme-client/src/crypto/index.js',
    from: "const asn1js = require('asn1js');\nconst x509 = require('@peculiar/x509');",
    to: [
      'let __x509;',
      'let __asn1js;',
      'async function __loadX509() {',
      '  if (__x509) return;',
      // From a CommonJS file, esbuild's chunk of a CommonJS package has
      // its module.exports as the default export only.
      "  const [xm, am] = await Promise.all([import('@peculiar/x509'), import('asn1js')]);",
      '  const x = xm.default ?? xm;',
      '  const a = am.default ?? am;',
      '  x.cryptoProvider.set(crypto.webcrypto);',
      '  __asn1js = a;',
      '  __x509 = x;',
      '}',
      'const __loaded = (name, get) => new Proxy({}, { get: (_, k) => {',
      '  const m = get();',
      '  if (!m) throw new Error(`acme-sidecar build: ${name} used before an async acme-client crypto function loaded it`);',
      '  return m[k];',
      '} });',
      "const asn1js = __loaded('asn1js', () => __asn1js);",
      "const x509 = __loaded('@peculiar/x509', () => __x509);",
    ].join('\n'),
    why: 'acme-client loading @peculiar/x509 at load',
  },
  {
    file: 'acme-client/src/crypto/index.js',
    from: '\nx509.cryptoProvider.set(crypto.webcrypto);\n',
    to: '\n',
    why: 'acme-client setting the crypto provider of @peculiar/x509 at load',
  },
  {
    // finalizeOrder (the CSR) and revokeCertificate send the body of a PEM
    // block, which acme-client decodes with @peculiar/x509 synchronously:
    // our CSR is built by src/acme/der.ts, so nothing has loaded it by then.
    // The first block's base64 body, without it.
    file: 'acme-client/src/crypto/index.js',
    from: [
      'exports.getPemBodyAsB64u = (pem) => {',
      '    const chain = splitPemChain(pem);',
      '',
      '    if (!chain.length) {',
      "        throw new Error('Unable to parse PEM body from string');",
      '    }',
      '',
      '    /* Select first object, extract body and convert to b64u */',
      '    const dec = x509.PemConverter.decodeFirst(chain[0]);',
      "    return Buffer.from(dec).toString('base64url');",
      '};',
    ].join('\n'),
    to: [
      'exports.getPemBodyAsB64u = (pem) => {',
      String.raw`    const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END \1-----/.exec(pem.toString());`,
      "    if (!m) throw new Error('Unable to parse PEM body from string');",
      String.raw`    return Buffer.from(m[2].replace(/\s+/g, ''), 'base64').toString('base64url');`,
      '};',
    ].join('\n'),
    why: "acme-client's getPemBodyAsB64u needing @peculiar/x509",
  },
  {
    file: 'acme-client/src/crypto/index.js',
    from: 'exports.createCsr = async (data, keyPem = null) => {',
    to: 'exports.createCsr = async (data, keyPem = null) => {\n    await __loadX509();',
    why: 'createCsr loading @peculiar/x509',
  },
  {
    file: 'acme-client/src/crypto/index.js',
    from: 'exports.createAlpnCertificate = async (authz, keyAuthorization, keyPem = null) => {',
    to:
      'exports.createAlpnCertificate = async (authz, keyAuthorization, keyPem = null) => {\n' +
      '    await __loadX509();',
    why: 'createAlpnCertificate loading @peculiar/x509',
  },
  {
    // winston's own debug output (@dabh/diagnostics) picks its development
    // build unless NODE_ENV=production; that build loads colorspace, kuler
    // and its ANSI modifiers (7 ms of CPU) to print nothing unless DEBUG or
    // DIAGNOSTICS names a winston namespace. Without either variable both
    // builds give the same no-op loggers, so the development one is loaded
    // only when one is set.
    file: '@dabh/diagnostics/node/index.js',
    from: "if (process.env.NODE_ENV === 'production') {",
    to: "if (process.env.NODE_ENV === 'production' || !(process.env.DEBUG || process.env.DIAGNOSTICS)) {",
    why: "winston's diagnostics in their development build",
  },
  {
    // Reading globalThis.FormData at load loads Node's undici (12 ms of
    // CPU). The check it serves is a fast path: the test after it (a
    // prototype with append() whose tag is FormData) recognises a FormData
    // as well, and none exists before undici is loaded.
    file: 'axios/dist/node/axios.cjs',
    from: "const FormDataCtor = typeof G.FormData !== 'undefined' ? G.FormData : undefined;",
    to: 'const FormDataCtor = undefined;',
    why: 'globalThis.FormData read at load',
  },
  {
    // http2 is only for a request with `httpVersion: 2`; none of ours.
    file: 'axios/dist/node/axios.cjs',
    from: "var http2 = require('http2');",
    to:
      'var __http2;\n' +
      "var http2 = { get connect() { return (__http2 ??= require('http2')).connect; }, " +
      "get constants() { return (__http2 ??= require('http2')).constants; } };",
    why: 'node:http2 required at load',
  },
  {
    // form-data (with mime-types' 213 kB mime-db, combined-stream...) is
    // axios's FormData class for a multipart body; nothing here sends one
    // (no FormData or multipart content type in src/). Without it axios
    // falls back to Node's global FormData, which its http adapter streams
    // as well.
    file: 'axios/dist/node/axios.cjs',
    from: "var FormData$1 = require('form-data');",
    to: 'var FormData$1 = null;',
    why: 'form-data and mime-db',
  },
  {
    // node-cron matches CHECK_SCHEDULE against the date's fields as
    // Intl.DateTimeFormat formats them, in the local time zone when no
    // `timezone` is given (ours never is): that maps ICU's date and time
    // zone data, 8.4 MB of RSS for the daemon's whole life (6.5 MB of the
    // Node binary's pages, 1.9 MB of heap; Node 24), for what the Date's own
    // local getters say. Without a time zone the fields and the UTC offset
    // come from those getters; with one, node-cron's Intl code as before.
    // test/unit/build-patches.test.ts compares both over two years in zones
    // with and without daylight saving time.
    file: 'node-cron/dist/_shared.js',
    from: 'function buildDateParts(date, timezone) {\n    const dateFormat = getPartsFormatter(timezone);',
    to: [
      "const __WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];",
      'function __localGmt(date) {',
      '    const off = -date.getTimezoneOffset();',
      "    if (off === 0) return 'Z';",
      '    const abs = Math.abs(off);',
      "    return `GMT${off < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;",
      '}',
      'function __localDateParts(date) {',
      '    const result = {',
      '        day: date.getDate(),',
      '        month: date.getMonth() + 1,',
      '        year: date.getFullYear(),',
      '        hour: date.getHours(),',
      '        minute: date.getMinutes(),',
      '        second: date.getSeconds(),',
      '        millisecond: date.getMilliseconds(),',
      '        weekday: __WEEKDAYS[date.getDay()]',
      '    };',
      '    let gmt;',
      "    Object.defineProperty(result, 'gmt', {",
      '        enumerable: true,',
      '        configurable: true,',
      '        get() {',
      '            return gmt ??= __localGmt(date);',
      '        }',
      '    });',
      '    return result;',
      '}',
      'function buildDateParts(date, timezone) {',
      '    if (!timezone) return __localDateParts(date);',
      '    const dateFormat = getPartsFormatter(timezone);',
    ].join('\n'),
    why: "node-cron's Intl.DateTimeFormat for the local time zone",
  },
  {
    file: 'node-cron/dist/_shared.js',
    from: 'function getTimezoneGMT(date, timezone) {\n    const fmt = getOffsetFormatter(timezone);',
    to: [
      'function getTimezoneGMT(date, timezone) {',
      '    if (!timezone) return __localGmt(date);',
      '    const fmt = getOffsetFormatter(timezone);',
    ].join('\n'),
    why: "node-cron's Intl.DateTimeFormat for the local UTC offset",
  },
];

/**
 * `contents` of the package file `file` (relative to node_modules) with
 * its SOURCE_PATCHES applied; throws when a patched text is not found.
 */
export function patchSource(file: string, contents: string): string {
  for (const p of SOURCE_PATCHES) {
    if (p.file !== file) continue;
    if (!contents.includes(p.from)) {
      throw new Error(`build patch "${p.why}": ${JSON.stringify(p.from)} not found in ${file}`);
    }
    contents = p.whole ? p.to : contents.replace(p.from, () => p.to);
  }
  return contents;
}

/**
 * The files of SOURCE_PATCHES that are not among the bundle's `inputs`
 * (esbuild's metafile): a package upgrade that renamed a patched file, or
 * a build that picked another one (node-cron's `_shared.cjs` for its
 * `_shared.js`), would otherwise drop the patch without a word.
 */
export function unpatchedFiles(inputs: readonly string[]): string[] {
  const files = [...new Set(SOURCE_PATCHES.map((p) => p.file))];
  return files.filter((f) => !inputs.some((i) => i.endsWith(`node_modules/${f}`)));
}

/** Applies SOURCE_PATCHES; fails the build when a patched text is not found. */
const sourcePatches: Plugin = {
  name: 'source-patches',
  setup(b) {
    const files = [...new Set(SOURCE_PATCHES.map((p) => p.file))].map((f) =>
      f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    );
    const filter = new RegExp(`node_modules/(${files.join('|')})$`);
    b.onLoad({ filter }, async (args) => {
      const file = /node_modules\/(.*)$/.exec(args.path.split(path.sep).join('/'))?.[1] ?? '';
      try {
        const contents = patchSource(file, await readFile(args.path, 'utf8'));
        return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
      } catch (err) {
        return { errors: [{ text: (err as Error).message }] };
      }
    });
  },
};

export function cliBuildOptions(outdir: string): BuildOptions {
  return {
    absWorkingDir: ROOT,
    entryPoints: [path.join(ROOT, 'src', 'cli.ts')],
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: [...EXTERNAL_PACKAGES],
    // One axios: acme-client require()s its CommonJS build, and without this
    // the `import axios` of src/ would bundle its ES build as a second copy.
    alias: { axios: 'axios/dist/node/axios.cjs' },
    banner: { js: REQUIRE_BANNER },
    plugins: [builtinsThroughRequire, sourcePatches],
    // Readable stack traces: no minifying (it saved no start-up time here).
    minify: false,
    logLevel: 'warning',
  };
}

/**
 * V8 keeps a script's source for as long as its functions live, one byte
 * per character when the text is Latin-1 and two for the whole script as
 * soon as one character is not: a single `§` or `—` in a comment (esbuild
 * keeps comments, and escapes non-ASCII only in strings and names) doubles
 * the chunk's source in memory, 3.5 MB over the bundle on Node 24
 * (docs/performance.md). Every code unit above 0x7f becomes a `\uXXXX`
 * escape: text in a comment, the same character in a string, a template,
 * a regular expression or a name.
 */
export function asciiOnly(js: string): string {
  return js.replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * Empties `outdir` (chunk names carry hashes) and writes the bundle there.
 * Resolves to each output file (absolute path) with the npm packages
 * bundled into it, for tests of what a command loads.
 */
export async function buildCli(outdir: string): Promise<Map<string, Set<string>>> {
  await rm(outdir, { recursive: true, force: true });
  const result = await build({ ...cliBuildOptions(outdir), metafile: true, write: false });
  if (result.errors.length > 0) throw new Error(`esbuild: ${result.errors.length} errors`);
  const unpatched = unpatchedFiles(Object.keys(result.metafile.inputs));
  if (unpatched.length > 0) {
    throw new Error(
      `build patches not applied: ${unpatched.join(', ')} not in the bundle (renamed by an upgrade?)`,
    );
  }
  await mkdir(outdir, { recursive: true });
  for (const file of result.outputFiles) {
    await mkdir(path.dirname(file.path), { recursive: true });
    await writeFile(file.path, asciiOnly(file.text));
  }
  const packages = new Map<string, Set<string>>();
  for (const [out, meta] of Object.entries(result.metafile.outputs)) {
    const pkgs = new Set<string>();
    for (const input of Object.keys(meta.inputs)) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(input)?.[1];
      if (pkg) pkgs.add(pkg);
    }
    packages.set(path.resolve(ROOT, out), pkgs);
  }
  return packages;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildCli(path.join(ROOT, 'dist', 'src'));
  process.stdout.write('dist/src/cli.js: bundled\n');
}
