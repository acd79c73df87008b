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
import { rm } from 'node:fs/promises';
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
    plugins: [builtinsThroughRequire],
    // Readable stack traces: no minifying (it saved no start-up time here).
    minify: false,
    logLevel: 'warning',
  };
}

/** Empties `outdir` (chunk names carry hashes) and writes the bundle there. */
export async function buildCli(outdir: string): Promise<void> {
  await rm(outdir, { recursive: true, force: true });
  const result = await build(cliBuildOptions(outdir));
  if (result.errors.length > 0) throw new Error(`esbuild: ${result.errors.length} errors`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildCli(path.join(ROOT, 'dist', 'src'));
  process.stdout.write('dist/src/cli.js: bundled\n');
}
