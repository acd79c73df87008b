/**
 * The idle pass of issue 15 (goal 4) and the daemon's memory with many
 * certificates (goal 3): N valid certificates, then the real daemon
 * (`node dist/src/cli.js run`) against the same store, Pebble and fake
 * Cattle API, and the passes it runs with nothing to do.
 *
 * 1. seed: `acme-sidecar once` (scripts/bench-pass.ts, the real pass) issues
 *    N single-name certificates from the staging Pebble (VA no-sleep) for N
 *    labelled services and pushes them to the fake Cattle API;
 * 2. the daemon starts on that state (LOOP_TIME=0: passes run only when
 *    the bench touches DOMAINS_FILE, a watched file); its first pass asks
 *    the CA's renewalInfo for every certificate (a restarted daemon does),
 *    the passes after it are the idle passes measured;
 * 3. for each pass: wall time, CPU and store reads as the daemon measured
 *    them (its `pass finished` debug line, and the metrics it exports),
 *    platform requests by kind (the fake Cattle API logs each), ACME
 *    requests at the CA (Pebble's log), and the daemon's RSS (/proc).
 *
 * Usage: npx tsx scripts/bench-idle.ts --idle 1000 [--passes 3] [--settle 60] [--gap 5] [--verbose]
 * (`npm run bench -- --idle N` runs it after the other rows).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sidecarEnvFor, startDevEnv, type DevEnv } from '../devenv/index.js';
import { startFakeCattle, type FakeCattle, type LoggedRequest } from '../devenv/fake-cattle.js';
import { freePorts, inotifyWatchCount } from '../devenv/proc.js';
import { DENT_LABEL } from '../src/platform/rancher/rancher-platform.js';
import type { PassReport } from './bench-pass.js';
import { buildCli } from './build.js';
import { imageMallocEnv, imageNodeArgs } from './image-node-args.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface IdleOptions {
  readonly n: number;
  /** Idle passes measured after the daemon's first pass. */
  readonly passes: number;
  readonly verbose?: boolean;
  /**
   * Seconds the daemon is left alone after its last pass before its idle
   * RSS is read (V8 shrinks its heap when nothing runs); 0: at once.
   */
  readonly settleSeconds?: number;
  /** Seconds the daemon is left idle after each pass (its RSS then is printed too); 0: none. */
  readonly gapSeconds?: number;
  /** Build dist/ first (false when the caller just did). */
  readonly build?: boolean;
}

export interface IdlePass {
  readonly wallMs: number;
  readonly cpuSeconds: number;
  readonly storeReads: number;
  /** Platform requests by kind ("GET certificates (list page)", ...). */
  readonly platform: Record<string, number>;
  readonly platformWrites: number;
  readonly acmeRequests: number;
  readonly rssMB: number;
  /** With a gap: the RSS at its end, before the next pass. */
  readonly idleRssMB?: number;
}

export interface IdleResult {
  readonly lines: string[];
  readonly failures: string[];
  /** The daemon's first pass, then the idle passes (absent when the seed failed). */
  readonly passes?: readonly IdlePass[];
  /** RSS (MB) after --settle seconds idle; absent without --settle. */
  readonly settledRssMB?: number;
}

/** `GET certificates?name=x` is a per-certificate read; anything else a list page (or a write). */
function requestKind(r: LoggedRequest): string {
  const coll = r.path.replace(/^\/v2-beta\/?/, '').replace(/^projects\/[^/]+\/?/, '');
  const q = new URLSearchParams(r.query);
  const what = coll.split('/')[0] || 'root';
  if (r.method !== 'GET') return `${r.method} ${what}`;
  if (coll.includes('/')) return `GET ${what}/<id>`;
  return q.has('name') ? `GET ${what}?name= (one certificate)` : `GET ${what} (list page)`;
}

function tally(reqs: readonly LoggedRequest[]): { kinds: Record<string, number>; writes: number } {
  const kinds: Record<string, number> = {};
  let writes = 0;
  for (const r of reqs) {
    const k = requestKind(r);
    kinds[k] = (kinds[k] ?? 0) + 1;
    if (r.method !== 'GET') writes++;
  }
  return { kinds, writes };
}

/** ACME requests both Pebbles have served so far (one `-> calling handler()` line each). */
async function caRequests(env: DevEnv): Promise<number> {
  let n = 0;
  for (const log of [env.staging.logPath, env.production.logPath]) {
    const text = await readFile(log, 'utf8').catch(() => '');
    for (const line of text.split('\n')) if (line.includes('-> calling handler()')) n++;
  }
  return n;
}

/**
 * Where the anonymous memory of `pid` is (/proc/<pid>/smaps, MB): `brk`,
 * glibc malloc's main arena (the `[heap]` mapping); `anon`, every other
 * anonymous mapping (V8's heap pages, the other malloc arenas, thread
 * stacks); `file`, the binary and libraries.
 */
async function memoryMap(pid: number): Promise<{ brk: number; anon: number; file: number }> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const kb = { brk: 0, anon: 0, file: 0 };
  let name = '';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      name = head[1] ?? '';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const where = name === '[heap]' ? 'brk' : name.startsWith('/') ? 'file' : 'anon';
    kb[where] += Number(rss[1]);
  }
  return { brk: kb.brk / 1024, anon: kb.anon / 1024, file: kb.file / 1024 };
}

async function rssOf(
  pid: number,
): Promise<{ rssMB: number; hwmMB: number; anonMB: number; fileMB: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]);
  return {
    rssMB: kb('VmRSS') / 1024,
    hwmMB: kb('VmHWM') / 1024,
    anonMB: kb('RssAnon') / 1024,
    fileMB: kb('RssFile') / 1024,
  };
}

function runNode(args: string[], env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) =>
    child.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${args.join(' ')} exited ${String(code)}: ${err.slice(-3000)}`)),
    ),
  );
}

interface PassLine {
  ms: number;
  cpuSeconds: number;
  storeReads?: number;
  certificates: number;
}

/** The daemon, with its `pass finished` debug lines collected as they come. */
class Daemon {
  readonly passes: PassLine[] = [];
  /** The ms of each collection the daemon ran once idle after a pass (src/app/idle-gc.ts). */
  readonly collections: number[] = [];
  private waiters: (() => void)[] = [];
  private stderrTail = '';

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      this.stderrTail = (this.stderrTail + d).slice(-4000);
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const l = JSON.parse(line) as { message?: string } & Partial<PassLine>;
        if (l.message === 'heap collected after the pass') this.collections.push(Number(l.ms));
        if (l.message !== 'pass finished') continue;
        this.passes.push({
          ms: Number(l.ms),
          cpuSeconds: Number(l.cpuSeconds),
          certificates: Number(l.certificates),
          ...(l.storeReads !== undefined && { storeReads: Number(l.storeReads) }),
        });
        for (const w of this.waiters.splice(0)) w();
      }
    });
  }

  async untilPasses(count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.passes.length < count) {
      if (this.child.exitCode !== null) {
        throw new Error(`the daemon exited ${this.child.exitCode}: ${this.stderrTail}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`no pass ${count} within ${timeoutMs} ms: ${this.stderrTail}`);
      }
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 500).unref();
      });
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const closed = new Promise((r) => this.child.once('close', r));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await closed;
    clearTimeout(t);
  }
}

export async function benchIdle(opts: IdleOptions): Promise<IdleResult> {
  const { n } = opts;
  const lines: string[] = [];
  const failures: string[] = [];
  const say = (s: string) => console.error(`bench-idle: ${s}`);
  let env: DevEnv | undefined;
  let cattle: FakeCattle | undefined;
  let daemon: Daemon | undefined;
  try {
    if (opts.build !== false) {
      say('building dist/ (the daemon measured)...');
      await buildCli(path.join(ROOT, 'dist', 'src'));
    }
    env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
    cattle = await startFakeCattle();
    for (let i = 1; i <= n; i++) {
      cattle.addService({ name: `idle-${i}`, labels: { [DENT_LABEL]: `i${i}.idle.test` } });
    }
    const domainsFile = path.join(env.dir, 'domains.txt');
    await writeFile(domainsFile, '# passes are started by touching this file\n');
    const [statusPort] = (await freePorts(1)) as [number];
    const vars = sidecarEnvFor(env, {
      PLATFORM: 'rancher',
      CATTLE_URL: cattle.url,
      CATTLE_ACCESS_KEY: cattle.accessKey,
      CATTLE_SECRET_KEY: cattle.secretKey,
      STAGING: 'true',
      DOMAINS_FILE: domainsFile,
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
    });

    // ---- 1. seed N valid certificates through the real pass -------------------
    say(`seeding ${n} certificates (acme-sidecar once, staging, VA no-sleep)...`);
    const t0 = performance.now();
    const seedOut = await runNode(
      ['--import', 'tsx', path.join(ROOT, 'scripts/bench-pass.ts')],
      vars,
    );
    const seedMs = performance.now() - t0;
    const seed = JSON.parse(
      seedOut.split('\n').find((l) => l.startsWith('{')) ?? '{}',
    ) as PassReport;
    lines.push(
      `idle seed: ${seed.ready}/${n} certificates issued and pushed by one \`once\` pass in ${(seed.wallMs / 1000).toFixed(1)} s ` +
        `(${((seed.wallMs / 1000 / Math.max(1, seed.ready)) * 1000).toFixed(0)} ms per certificate; child ${(seedMs / 1000).toFixed(1)} s in all), peak RSS ${seed.maxRssMB.toFixed(0)} MB`,
    );
    if (seed.ready !== n) {
      failures.push(`seed: ${seed.ready}/${n} ready: ${JSON.stringify(seed.notReady)}`);
      return { lines, failures };
    }

    // ---- 2. the daemon on that state --------------------------------------------
    say('starting the daemon (dist/src/cli.js run)...');
    // The image's Node flags (Dockerfile ENTRYPOINT), or BENCH_IDLE_NODE_ARGS instead, e.g.
    // `--cpu-prof --cpu-prof-dir=/tmp/prof`: where the passes spend their CPU.
    const nodeArgs =
      process.env.BENCH_IDLE_NODE_ARGS !== undefined
        ? process.env.BENCH_IDLE_NODE_ARGS.split(' ').filter(Boolean)
        : imageNodeArgs();
    // The image's malloc tunables (Dockerfile ENV), or BENCH_IDLE_MALLOC_ENV
    // instead (`MALLOC_ARENA_MAX=8`, or "" for glibc's defaults).
    const mallocEnv =
      process.env.BENCH_IDLE_MALLOC_ENV !== undefined
        ? Object.fromEntries(
            process.env.BENCH_IDLE_MALLOC_ENV.split(' ')
              .filter(Boolean)
              .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
          )
        : imageMallocEnv();
    lines.push(
      `daemon: ${Object.entries(mallocEnv)
        .map(([k, v]) => `${k}=${v} `)
        .join('')}node ${[...nodeArgs, 'dist/src/cli.js', 'run'].join(' ')}`,
    );
    const child = spawn(
      process.execPath,
      [...nodeArgs, path.join(ROOT, 'dist/src/cli.js'), 'run'],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          ...mallocEnv,
          ...vars,
          LOG_LEVEL: 'debug',
          LOOP_TIME: '0',
          // Never during the bench.
          CHECK_SCHEDULE: '0 0 1 1 *',
          STATUS_ADDRESS: `127.0.0.1:${statusPort}`,
        },
        // BENCH_IDLE_STDOUT=file: the daemon's stdout there (e.g. what
        // `--trace-gc` in BENCH_IDLE_NODE_ARGS prints); else dropped.
        stdio: [
          'ignore',
          process.env.BENCH_IDLE_STDOUT ? openSync(process.env.BENCH_IDLE_STDOUT, 'w') : 'ignore',
          'pipe',
        ],
      },
    );
    daemon = new Daemon(child);
    const passes: IdlePass[] = [];
    let markCattle = cattle.requests.length;
    let markCa = await caRequests(env);
    const timeoutMs = 120_000 + n * 200;
    for (let p = 1; p <= opts.passes + 1; p++) {
      if (p > 1) {
        // A watched file changed: one pass (debounced 500 ms).
        await appendFile(domainsFile, `# pass ${p}\n`);
      }
      await daemon.untilPasses(p, timeoutMs);
      const line = daemon.passes[p - 1] as PassLine;
      const reqs = cattle.requests.slice(markCattle);
      markCattle = cattle.requests.length;
      const ca = await caRequests(env);
      const { kinds, writes } = tally(reqs);
      const { rssMB } = await rssOf(child.pid ?? 0);
      let idleRssMB: number | undefined;
      if (opts.gapSeconds) {
        await new Promise((r) => setTimeout(r, (opts.gapSeconds ?? 0) * 1000));
        idleRssMB = (await rssOf(child.pid ?? 0)).rssMB;
      }
      if (process.env.BENCH_IDLE_SIGNAL_AFTER_PASS) {
        // E.g. SIGURG for a --require'd probe that collects garbage and logs
        // the heap (docs/performance.md, the memory section): after the RSS above.
        child.kill(process.env.BENCH_IDLE_SIGNAL_AFTER_PASS as NodeJS.Signals);
        await new Promise((r) => setTimeout(r, 2000));
      }
      passes.push({
        wallMs: line.ms,
        cpuSeconds: line.cpuSeconds,
        storeReads: line.storeReads ?? NaN,
        platform: kinds,
        platformWrites: writes,
        acmeRequests: ca - markCa,
        rssMB,
        ...(idleRssMB !== undefined && { idleRssMB }),
      });
      markCa = ca;
      if (line.certificates !== n)
        failures.push(`pass ${p}: ${line.certificates}/${n} certificates`);
    }
    let settled: Awaited<ReturnType<typeof rssOf>> | undefined;
    let settledMap: Awaited<ReturnType<typeof memoryMap>> | undefined;
    if (opts.settleSeconds) {
      await new Promise((r) => setTimeout(r, (opts.settleSeconds ?? 0) * 1000));
      settled = await rssOf(child.pid ?? 0);
      settledMap = await memoryMap(child.pid ?? 0);
      // BENCH_IDLE_SMAPS=file: a copy of the settled daemon's /proc/<pid>/smaps, mapping by mapping.
      if (process.env.BENCH_IDLE_SMAPS)
        await writeFile(
          process.env.BENCH_IDLE_SMAPS,
          await readFile(`/proc/${child.pid ?? 0}/smaps`),
        );
    }
    if (process.env.BENCH_IDLE_HEAPSNAPSHOT) {
      // With BENCH_IDLE_NODE_ARGS=--heapsnapshot-signal=SIGUSR2: what the idle daemon holds.
      child.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, 20_000));
    }
    // The exported metrics, read after the last pass (never during one: a scrape costs CPU).
    const metrics = await fetch(`http://127.0.0.1:${statusPort}/metrics`).then((r) => r.text());
    const metric = (name: string) => new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? '-';
    const ready = new RegExp(
      '^certmanager_certificate_ready_status\\{[^}]*condition="True"[^}]*\\} 1$',
      'gm',
    );
    const readyCount = metrics.match(ready)?.length ?? 0;
    const { rssMB, hwmMB } = await rssOf(child.pid ?? 0);
    // The kernel's count (live/, one per certificate, DOMAINS_FILE).
    const watches = inotifyWatchCount(child.pid ?? 0);

    const fmtKinds = (k: Record<string, number>) =>
      Object.entries(k)
        .map(([kind, c]) => `${c} ${kind}`)
        .join(', ') || 'none';
    passes.forEach((p, i) => {
      const label = i === 0 ? 'first daemon pass (asks renewalInfo)' : `idle pass ${i}`;
      lines.push(
        `${label}: ${n} valid, ${(p.wallMs / 1000).toFixed(2)} s wall, ${(p.cpuSeconds * 1000).toFixed(0)} ms daemon CPU, ` +
          `${p.acmeRequests} ACME requests, ${p.platformWrites} platform writes, platform reads: ${fmtKinds(p.platform)}, ` +
          `${p.storeReads} store reads (${(p.storeReads / n).toFixed(2)} per certificate), RSS ${p.rssMB.toFixed(0)} MB` +
          (p.idleRssMB !== undefined
            ? ` (${p.idleRssMB.toFixed(0)} MB after ${opts.gapSeconds ?? 0} s idle)`
            : ''),
      );
    });
    if (settled) {
      lines.push(
        `daemon idle ${opts.settleSeconds ?? 0} s after its last pass: RSS ${settled.rssMB.toFixed(0)} MB ` +
          `(${settled.anonMB.toFixed(0)} MB anonymous, ${settled.fileMB.toFixed(0)} MB file-backed; ` +
          `anonymous: ${settledMap?.brk.toFixed(0) ?? '-'} MB malloc's main arena ([heap]), ` +
          `${settledMap?.anon.toFixed(0) ?? '-'} MB other mappings: V8's heap, other arenas, stacks)`,
      );
    }
    lines.push(
      `daemon after ${opts.passes} idle passes: RSS ${rssMB.toFixed(0)} MB, peak RSS ${hwmMB.toFixed(0)} MB, ` +
        `${watches} inotify watches, ` +
        (daemon.collections.length
          ? `${daemon.collections.length} collections once idle (${Math.min(...daemon.collections)} to ${Math.max(...daemon.collections)} ms each); `
          : 'no collection once idle; ') +
        `metrics: acme_sidecar_last_pass_cpu_seconds ${metric('acme_sidecar_last_pass_cpu_seconds')}, ` +
        `acme_sidecar_last_pass_store_reads ${metric('acme_sidecar_last_pass_store_reads')}, ${readyCount} certificates ready`,
    );
    for (const [i, p] of passes.entries()) {
      if (i === 0) continue;
      if (p.acmeRequests !== 0) failures.push(`idle pass ${i}: ${p.acmeRequests} ACME requests`);
      if (p.platformWrites !== 0)
        failures.push(`idle pass ${i}: ${p.platformWrites} platform writes`);
      const perCert = Object.keys(p.platform).filter((k) => !k.endsWith('(list page)'));
      if (perCert.length)
        failures.push(
          `idle pass ${i}: platform reads other than list pages: ${perCert.join(', ')}`,
        );
    }
    if (readyCount !== n) failures.push(`the daemon reports ${readyCount}/${n} ready`);
    return {
      lines,
      failures,
      passes,
      ...(settled && { settledRssMB: settled.rssMB }),
    };
  } finally {
    await daemon?.stop();
    await cattle?.close();
    await env?.stop();
  }
}

function parseArgs(argv: string[]): IdleOptions {
  let n = 100;
  let passes = 3;
  let verbose = false;
  let settleSeconds = 0;
  let gapSeconds = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--idle' || a === '--n') n = Number(argv[++i]);
    else if (a.startsWith('--idle=')) n = Number(a.slice(7));
    else if (a === '--passes') passes = Number(argv[++i]);
    else if (a === '--settle') settleSeconds = Number(argv[++i]);
    else if (a === '--gap') gapSeconds = Number(argv[++i]);
    else if (a === '--verbose' || a === '-v') verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: npx tsx scripts/bench-idle.ts [--idle 1000] [--passes 3] [--settle 60] [--gap 5] [--verbose]',
      );
      process.exit(0);
    } else {
      console.error(`bench-idle: unknown argument ${JSON.stringify(a)} (try --help)`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(passes) || passes < 1) {
    console.error('bench-idle: --idle and --passes must be positive integers');
    process.exit(2);
  }
  if (![settleSeconds, gapSeconds].every((x) => Number.isInteger(x) && x >= 0)) {
    console.error('bench-idle: --settle and --gap must be whole numbers of seconds');
    process.exit(2);
  }
  return { n, passes, verbose, settleSeconds, gapSeconds };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opts = parseArgs(process.argv.slice(2));
  const load = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
  const loadBefore = load();
  benchIdle(opts).then(
    ({ lines, failures }) => {
      console.log(
        `acme-sidecar idle bench: N=${opts.n}, ${os.availableParallelism()} cores (${os.cpus()[0]?.model.trim() ?? '?'}), ` +
          `load average ${loadBefore} before, ${load()} after`,
      );
      for (const l of lines) console.log(l);
      for (const f of failures) console.error(`bench-idle: ERROR: ${f}`);
      process.exit(failures.length ? 1 : 0);
    },
    (err: unknown) => {
      console.error(`bench-idle: ERROR: ${err instanceof Error ? err.stack : String(err)}`);
      process.exit(1);
    },
  );
}
