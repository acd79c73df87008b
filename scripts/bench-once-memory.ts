/**
 * Issue 15 goal 3, the `once` half: the peak RSS of the built CLI
 * (`node dist/src/cli.js once`, what the image runs) issuing N single-name
 * certificates from staging then production (STAGING=false) through a
 * fake Rancher, with the Pebble pair of devenv/ (VA no-sleep).
 *
 * The peak is the kernel's (`VmHWM` of /proc/<pid>/status), read by a
 * preload (scripts/peak-rss.cjs) as the process exits: RSS, not heap.
 *
 * Usage: npx tsx scripts/bench-once-memory.ts [--n 100] [--node-args "--max-semi-space-size=1"]
 * (default: the Node flags of the Dockerfile's ENTRYPOINT; --node-args "" for none)
 * (build dist/ first: npm run build). `npm run bench` runs it too (`--once-memory N`).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sidecarEnvFor, startDevEnv } from '../devenv/index.js';
import { startFakeCattle } from '../devenv/fake-cattle.js';
import { DENT_LABEL } from '../src/platform/rancher/rancher-platform.js';
import { imageMallocEnv, imageNodeArgs } from './image-node-args.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function parse(argv: string[]): { n: number; nodeArgs: string[] } {
  let n = 100;
  // The image's flags (Dockerfile ENTRYPOINT) unless --node-args says otherwise ("" for none).
  let nodeArgs = imageNodeArgs();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--n') n = Number(argv[++i]);
    else if (a === '--node-args') nodeArgs = (argv[++i] ?? '').split(' ').filter(Boolean);
    else {
      console.error(`bench-once-memory: unknown argument ${JSON.stringify(a)}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(n) || n < 1) {
    console.error('bench-once-memory: --n must be a positive integer');
    process.exit(2);
  }
  return { n, nodeArgs };
}

export interface OnceMemoryResult {
  readonly lines: string[];
  readonly failures: string[];
  /** The kernel's peak RSS of the `once` process (VmHWM), MB; NaN when unread. */
  readonly peakMB: number;
}

/** N certificates, staging then production, by the built `once`; its peak RSS. */
export async function benchOnceMemory(opts: {
  readonly n: number;
  readonly nodeArgs?: readonly string[];
}): Promise<OnceMemoryResult> {
  const { n } = opts;
  const nodeArgs = opts.nodeArgs ?? imageNodeArgs();
  const lines: string[] = [];
  const failures: string[] = [];
  const load = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
  const loadBefore = load();
  const env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
  const cattle = await startFakeCattle();
  try {
    for (let i = 1; i <= n; i++) {
      cattle.addService({ name: `mem-${i}`, labels: { [DENT_LABEL]: `m${i}.mem.test` } });
    }
    const vars = sidecarEnvFor(env, {
      PLATFORM: 'rancher',
      CATTLE_URL: cattle.url,
      CATTLE_ACCESS_KEY: cattle.accessKey,
      CATTLE_SECRET_KEY: cattle.secretKey,
      STAGING: 'false',
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
    });
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      [
        ...nodeArgs,
        '--require',
        path.join(ROOT, 'scripts/peak-rss.cjs'),
        path.join(ROOT, 'dist/src/cli.js'),
        'once',
      ],
      {
        cwd: ROOT,
        // The image's malloc tunables (Dockerfile ENV), as the image runs `once`.
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...imageMallocEnv(), ...vars },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    const wallS = (performance.now() - t0) / 1000;
    const [, peak, cpu] = /^peak-rss: (\d+) kB, cpu (\S+) s/m.exec(err) ?? [];
    const peakMB = peak ? Number(peak) / 1024 : NaN;
    const writes = cattle.requests.filter((r) => r.method !== 'GET').length;
    lines.push(
      `once memory: N=${n} (staging then production), node ${process.version} ${nodeArgs.join(' ')}; ` +
        `load average ${loadBefore} before, ${load()} after`,
    );
    lines.push(
      `once memory: exit ${String(code)} in ${wallS.toFixed(1)} s, peak RSS ${Number.isFinite(peakMB) ? peakMB.toFixed(0) : '?'} MB, ` +
        `${cpu ?? '?'} s CPU, ${writes} platform writes`,
    );
    if (code !== 0) {
      failures.push(`once memory: exit ${String(code)}\n${out.slice(-2000)}\n${err.slice(-3000)}`);
    }
    return { lines, failures, peakMB };
  } finally {
    await cattle.close();
    await env.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { n, nodeArgs } = parse(process.argv.slice(2));
  benchOnceMemory({ n, nodeArgs }).then(
    ({ lines, failures }) => {
      for (const l of lines) console.log(l);
      for (const f of failures) console.error(`bench-once-memory: ERROR: ${f}`);
      process.exit(failures.length ? 1 : 0);
    },
    (e: unknown) => {
      console.error(`bench-once-memory: ERROR: ${e instanceof Error ? e.stack : String(e)}`);
      process.exit(1);
    },
  );
}
