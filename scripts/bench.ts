/**
 * `npm run bench`: the sidecar against the clients a user would otherwise
 * run, every row in one invocation against the same kind of CA: real Pebble
 * 2.9 and nginx on 127.0.0.1 (devenv), N labelled services in the fake
 * Cattle API.
 *
 * Rows, each measured in its own child process (RSS and CPU its own):
 *   1. `sidecar once`, staging only, fresh state: N certificates until all
 *      are pushed to the platform (scripts/bench-pass.ts);
 *   2. bare acme-client: one account, `auto()` with skipChallengeVerification
 *      for one certificate after the other, default options: the loop a user
 *      would write (scripts/bench-bare.ts);
 *   3. certbot, lego (Debian) and lego v5 (devenv/install-lego.sh), when
 *      installed, on fewer certificates (--peer-n): each is skipped with a
 *      printed reason when absent;
 *   4. the sidecar and the bare loop again with PEBBLE_VA_NOSLEEP unset
 *      (Pebble waits 0-4 s before each validation, more like a real CA);
 *   5. the sidecar's second pass with everything valid (idle: no ACME
 *      request, no platform write);
 * and the built CLI's start-up: from process start to its first order, and
 * `healthcheck`'s wall time.
 *
 * "ACME requests per order" is counted at the CA: Pebble logs one line per
 * request, so every client is counted the same way. Exits 1 if a run did not
 * do (or did more than) the work it is measured on.
 *
 * Usage: npm run bench -- [--n 100] [--peer-n 10] [--slow-n 10] [--idle 1000] [--verbose]
 *        (or BENCH_N=100)
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sidecarEnvFor, startDevEnv, type DevEnv } from '../devenv/index.js';
import { startFakeCattle, type FakeCattle, type LoggedRequest } from '../devenv/fake-cattle.js';
import { DENT_LABEL } from '../src/platform/rancher/rancher-platform.js';
import { chainVerifiesTo } from '../src/util/x509.js';
import type { BareReport } from './bench-bare.js';
import { benchIdle } from './bench-idle.js';
import type { PassReport } from './bench-pass.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHILD_TIMEOUT_MS = 10 * 60_000;
const LEGO_V5_BIN = path.join(
  process.env.LEGO_GOBIN ??
    path.join(
      process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'),
      'acme-sidecar/go/lego-v5/bin',
    ),
  'lego',
);
const run = promisify(execFile);

interface Args {
  /** `--idle N`: the daemon's idle passes over N certificates (scripts/bench-idle.ts). */
  idle?: number;
  n: number;
  peerN: number;
  slowN: number;
  verbose: boolean;
}

function parseArgs(argv: string[]): Args {
  let n = Number(process.env.BENCH_N ?? '100');
  let peerN: number | undefined;
  let slowN: number | undefined;
  let verbose = false;
  let idle: number | undefined;
  const num = (i: number) => Number(argv[i]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--n') n = num(++i);
    else if (a.startsWith('--n=')) n = Number(a.slice(4));
    else if (a === '--peer-n') peerN = num(++i);
    else if (a === '--slow-n') slowN = num(++i);
    else if (a === '--verbose' || a === '-v') verbose = true;
    else if (a === '--idle') idle = num(++i);
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: npm run bench -- [--n 100] [--peer-n 10] [--slow-n 10] [--idle 1000] [--verbose]   (or BENCH_N=100)',
      );
      process.exit(0);
    } else {
      console.error(`bench: unknown argument ${JSON.stringify(a)} (try --help)`);
      process.exit(2);
    }
  }
  peerN ??= Math.min(n, 10);
  slowN ??= Math.min(n, 10);
  for (const [name, v] of [
    ['--n', n],
    ['--peer-n', peerN],
    ['--slow-n', slowN],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || (name === '--n' && v < 1)) {
      console.error(`bench: ${name} must be a positive integer, got ${String(v)}`);
      process.exit(2);
    }
  }
  return { n, peerN, slowN, verbose, ...(idle !== undefined && { idle }) };
}

interface ChildRun<T> {
  report: T;
  /** Spawn to exit, Node and tsx start-up included. */
  totalMs: number;
}

let running: ReturnType<typeof spawn> | undefined;

/** Runs `node --import tsx <script>` with only `env` (plus PATH); parses its one JSON stdout line. */
function runChild<T>(script: string, env: Record<string, string>): Promise<ChildRun<T>> {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', script)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running = child;
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running = undefined;
      const totalMs = performance.now() - t0;
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) {
        reject(
          new Error(
            `${script} exited ${signal ?? String(code)}\nstdout:\n${stdout}\nstderr (tail):\n${stderr.slice(-3000)}`,
          ),
        );
        return;
      }
      resolve({ report: JSON.parse(line) as T, totalMs });
    });
  });
}

interface Writes {
  writes: number;
  actions: number;
  deletes: number;
  reads: number;
}

function countWrites(reqs: readonly LoggedRequest[]): Writes {
  const w: Writes = { writes: 0, actions: 0, deletes: 0, reads: 0 };
  for (const r of reqs) {
    const isAction = new URLSearchParams(r.query).has('action');
    if (r.method === 'POST' && isAction) w.actions++;
    else if (r.method === 'POST' || r.method === 'PUT') w.writes++;
    else if (r.method === 'DELETE') w.deletes++;
    else w.reads++;
  }
  return w;
}

/** ACME requests Pebble has served so far: one `-> calling handler()` line each. */
async function pebbleRequests(logPath: string): Promise<{ total: number; newOrders: number }> {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  let total = 0;
  let newOrders = 0;
  for (const line of text.split('\n')) {
    if (!line.includes('-> calling handler()')) continue;
    total++;
    if (/POST \/order-plz /.test(line)) newOrders++;
  }
  return { total, newOrders };
}

/** CA-side requests made while `fn` runs (Pebble's log, before and after). */
async function countedAtCa<T>(
  logPath: string,
  fn: () => Promise<T>,
): Promise<{ value: T; requests: number; newOrders: number }> {
  const before = await pebbleRequests(logPath);
  const value = await fn();
  // Pebble writes its line before it answers: by now every line is out.
  const after = await pebbleRequests(logPath);
  return {
    value,
    requests: after.total - before.total,
    newOrders: after.newOrders - before.newOrders,
  };
}

const sec = (ms: number) => (ms / 1000).toFixed(1);
const fix = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Requests per order by kind ("<kind> <status>" keys summed per kind). */
function byKind(counts: Record<string, number>, orders: number): string {
  const kinds = new Map<string, number>();
  for (const [k, v] of Object.entries(counts)) {
    const kind = k.split(' ')[0] ?? k;
    kinds.set(kind, (kinds.get(kind) ?? 0) + v);
  }
  return [...kinds]
    .map(([s, v]) => `${s} ${orders > 0 ? fix(v / orders, 2) : String(v)}`)
    .join(', ');
}

interface Row {
  /** Rows are compared with the sidecar row of the same CA setting. */
  group: 'no VA sleep' | 'VA sleep';
  client: string;
  certs: number;
  wallMs: number;
  /** Requests per order at the CA (Pebble's log); undefined when not measurable. */
  caPerOrder?: number;
  rssMB?: number;
  cpuS?: number;
  note?: string;
}

/** One certificate after the other with a peer client; its wall time in all. */
async function runPeer(
  name: string,
  hosts: readonly string[],
  command: (host: string, dir: string) => { file: string; args: string[]; env: NodeJS.ProcessEnv },
): Promise<{ wallMs: number; failures: string[] }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `bench-${name}-`));
  const failures: string[] = [];
  const t0 = performance.now();
  try {
    for (const host of hosts) {
      const c = command(host, dir);
      try {
        await run(c.file, c.args, { env: c.env, timeout: 180_000, maxBuffer: 16 << 20 });
      } catch (err) {
        const e = err as { stderr?: string; message?: string };
        failures.push(
          `${host}: ${(e.stderr ?? e.message ?? String(err)).trim().split('\n').slice(-3).join(' | ')}`,
        );
      }
    }
    return { wallMs: performance.now() - t0, failures };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `<bin> --version`'s first line, or undefined when it is not installed. */
async function versionOf(bin: string, args = ['--version']): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await run(bin, args, { timeout: 30_000 });
    return (stdout || stderr).trim().split('\n')[0];
  } catch {
    return undefined;
  }
}

/** The built CLI's `once` for one name: ms from spawn to its first "order placed" log line. */
async function firstOrderOfCli(env: DevEnv, stateDir: string): Promise<number | undefined> {
  const spawnedAt = Date.now();
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/src/cli.js'), 'once'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...sidecarEnvFor(env, {
        STATE_DIR: stateDir,
        DOMAINS: 'startup.bench.test',
        STAGING: 'true',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
      }),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0)
    throw new Error(`dist/src/cli.js once exited ${String(code)}: ${stderr.slice(-2000)}`);
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const l = JSON.parse(line) as { message?: string; timestamp?: string };
    if (l.message === 'order placed' && l.timestamp) return Date.parse(l.timestamp) - spawnedAt;
  }
  return undefined;
}

/** Median wall time of `runs` runs of `node <args>`. */
async function medianWallMs(
  args: string[],
  env: Record<string, string>,
  runs = 5,
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await run(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? NaN;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const { n } = args;
  let env: DevEnv | undefined;
  let cattle: FakeCattle | undefined;
  const onSignal = () => {
    running?.kill('SIGKILL');
    void Promise.allSettled([cattle?.close(), env?.stop()]).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows: Row[] = [];
  const notes: string[] = [];
  const failures: string[] = [];
  const startup: string[] = [];
  let idle: { p2: ChildRun<PassReport>; w2: Writes } | undefined;
  let sidecarMs = NaN;
  let bareMs = NaN;

  try {
    console.error('bench: building dist/ (the CLI measured for start-up)...');
    await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT });

    const tSetup = performance.now();
    env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
    cattle = await startFakeCattle();
    const names = Array.from({ length: n }, (_, i) => `h${i + 1}.bench.test`);
    names.forEach((host, i) =>
      cattle?.addService({ name: `svc-${i + 1}`, labels: { [DENT_LABEL]: host } }),
    );
    console.error(`bench: environment up in ${sec(performance.now() - tSetup)} s; N=${n}`);
    const stagingLog = env.staging.logPath;

    const vars = sidecarEnvFor(env, {
      PLATFORM: 'rancher',
      CATTLE_URL: cattle.url,
      CATTLE_ACCESS_KEY: cattle.accessKey,
      CATTLE_SECRET_KEY: cattle.secretKey,
      STAGING: 'true',
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
    });

    // ---- 1. sidecar once, staging only ----------------------------------------
    console.error('bench: sidecar once (staging only, fresh state)...');
    let mark = cattle.requests.length;
    const c1 = await countedAtCa(stagingLog, () => runChild<PassReport>('bench-pass.ts', vars));
    const p1 = c1.value;
    const w1 = countWrites(cattle.requests.slice(mark));
    const root = await env.staging.getRootPem();
    const pushed = new Map(
      cattle
        .certificates()
        .filter((c) => !c.removed)
        .map((c) => [String(c.name), c]),
    );
    const missing = names.filter((h) => !pushed.has(h));
    const wrongCa = names.filter((h) => {
      const c = pushed.get(h);
      return c && !chainVerifiesTo(String(c.cert) + String(c.certChain ?? ''), root);
    });
    if (p1.report.ready !== n || missing.length || wrongCa.length || c1.newOrders !== n) {
      console.error(
        `bench: ERROR: the sidecar did not do the work: ${p1.report.ready}/${p1.report.total} ready ` +
          `(expected ${n}), ${c1.newOrders} orders at the CA; ${missing.length} not on the platform ` +
          `(${missing.slice(0, 5).join(', ')}); ${wrongCa.length} not from the staging CA`,
      );
      if (p1.report.notReady.length) console.error(JSON.stringify(p1.report.notReady, null, 2));
      return 1;
    }
    sidecarMs = p1.report.wallMs;
    rows.push({
      group: 'no VA sleep',
      client: 'acme-sidecar once (staging only)',
      certs: n,
      wallMs: p1.report.wallMs,
      caPerOrder: c1.requests / c1.newOrders,
      rssMB: p1.report.maxRssMB,
      cpuS: (p1.report.cpuUserMs + p1.report.cpuSystemMs) / 1000,
      note: `concurrency 4; ${w1.writes} platform writes`,
    });
    notes.push(
      `acme-sidecar: ${fix(p1.report.acmeRequests / n, 2)} requests per order at its HTTP boundary ` +
        `(account set-up included), by kind: ${byKind(p1.report.acmeByStep, n)}`,
    );
    if (p1.report.firstOrderMs !== undefined) {
      startup.push(
        `bench-pass.ts (tsx, in-process): first order ${fix(p1.report.firstOrderMs, 0)} ms after process start`,
      );
    }

    // ---- 2. bare acme-client loop ---------------------------------------------
    console.error('bench: bare acme-client loop (sequential auto())...');
    const bareEnv = (ca: DevEnv, hosts: string[]) => ({
      BENCH_DIRECTORY_URL: ca.staging.directoryUrl,
      BENCH_CA_PEM_PATH: ca.caPemPath,
      BENCH_WEBROOT: ca.webroot,
      BENCH_HOSTS: hosts.join(','),
    });
    const c2 = await countedAtCa(stagingLog, () =>
      runChild<BareReport>(
        'bench-bare.ts',
        bareEnv(
          env as DevEnv,
          Array.from({ length: n }, (_, i) => `b${i + 1}.bench.test`),
        ),
      ),
    );
    const bare = c2.value;
    if (bare.report.ok !== n) {
      failures.push(
        `bare acme-client got ${bare.report.ok}/${n}: ${bare.report.errors.join('; ')}`,
      );
    }
    bareMs = bare.report.wallMs;
    rows.push({
      group: 'no VA sleep',
      client: 'bare acme-client auto(), sequential',
      certs: n,
      wallMs: bare.report.wallMs,
      caPerOrder: c2.requests / Math.max(1, c2.newOrders),
      rssMB: bare.report.maxRssMB,
      cpuS: (bare.report.cpuUserMs + bare.report.cpuSystemMs) / 1000,
      note: 'one account, default options',
    });
    notes.push(
      `bare acme-client: ${fix(bare.report.acmeRequests / n, 2)} requests per order at its axios, ` +
        `by method: ${byKind(bare.report.acmeByMethod, n)}`,
    );

    // ---- 3. idle pass ---------------------------------------------------------
    console.error('bench: sidecar second pass (everything valid)...');
    mark = cattle.requests.length;
    const p2 = await runChild<PassReport>('bench-pass.ts', vars);
    const w2 = countWrites(cattle.requests.slice(mark));
    idle = { p2, w2 };
    if (p2.report.ready !== n) failures.push(`idle pass: ${p2.report.ready}/${n} ready`);
    // ARI: `once` asks the CA's renewalInfo for every certificate on every
    // run (a daemon again only after the CA's Retry-After, 6 h at Pebble).
    // Anything else is work an idle pass must not do.
    const idleAcme = Object.entries(p2.report.acmeByStep).filter(
      ([k]) => !k.startsWith('renewalInfo '),
    );
    if (idleAcme.length) {
      failures.push(
        `idle pass made ACME requests: ${JSON.stringify(Object.fromEntries(idleAcme))}`,
      );
    }
    if (w2.writes + w2.actions + w2.deletes !== 0) {
      failures.push(
        `idle pass made ${w2.writes} writes, ${w2.actions} actions, ${w2.deletes} deletes`,
      );
    }

    // ---- 4. start-up of the built CLI -----------------------------------------
    console.error('bench: start-up of dist/src/cli.js...');
    const startState = await mkdtemp(path.join(os.tmpdir(), 'bench-startup-'));
    try {
      const first = await firstOrderOfCli(env, startState);
      startup.push(
        `node dist/src/cli.js once (static platform, 1 name): first order placed ${first === undefined ? '-' : fix(first, 0)} ms after spawn`,
      );
    } finally {
      await rm(startState, { recursive: true, force: true });
    }
    const nodeMs = await medianWallMs(['-e', '0'], {});
    const hcMs = await medianWallMs(['dist/src/cli.js', 'healthcheck'], { STATUS_ADDRESS: 'off' });
    startup.push(
      `node dist/src/cli.js healthcheck: ${fix(hcMs / 1000, 2)} s wall (median of 5; \`node -e 0\` takes ${fix(nodeMs / 1000, 2)} s here)`,
    );

    // ---- 5. peers -------------------------------------------------------------
    const peerHosts = (tag: string) =>
      Array.from({ length: args.peerN }, (_, i) => `${tag}${i + 1}.bench.test`);
    const dirUrl = env.staging.directoryUrl;
    const webroot = env.webroot;
    const caPem = env.caPemPath;
    const peers: {
      label: string;
      bin: string;
      versionArgs?: string[];
      missing: string;
      tag: string;
      command: (
        host: string,
        dir: string,
      ) => { file: string; args: string[]; env: NodeJS.ProcessEnv };
    }[] = [
      {
        label: 'certbot',
        bin: 'certbot',
        missing: 'certbot is not installed (Debian package `certbot`)',
        tag: 'cb',
        command: (host, dir) => ({
          file: 'certbot',
          args: [
            'certonly',
            '--non-interactive',
            '--agree-tos',
            '--register-unsafely-without-email',
            '--server',
            dirUrl,
            '--webroot',
            '-w',
            webroot,
            '-d',
            host,
            '--config-dir',
            path.join(dir, 'config'),
            '--work-dir',
            path.join(dir, 'work'),
            '--logs-dir',
            path.join(dir, 'logs'),
            '--key-type',
            'ecdsa',
          ],
          env: { ...process.env, REQUESTS_CA_BUNDLE: caPem },
        }),
      },
      ...[
        {
          label: 'lego (Debian)',
          bin: '/usr/bin/lego',
          tag: 'lg',
          missing: 'lego is not installed (Debian package `lego`)',
        },
        {
          label: 'lego v5',
          bin: LEGO_V5_BIN,
          tag: 'l5',
          missing: `${LEGO_V5_BIN} is absent (devenv/install-lego.sh builds it with Go)`,
        },
      ].map((l) => ({
        ...l,
        versionArgs: ['--version'],
        command: (host: string, dir: string) => ({
          file: l.bin,
          args: [
            '--accept-tos',
            '--email',
            'bench@example.com',
            '--server',
            dirUrl,
            '--http',
            '--http.webroot',
            webroot,
            '--path',
            dir,
            '--key-type',
            'ec256',
            '-d',
            host,
            'run',
          ],
          env: { ...process.env, LEGO_CA_CERTIFICATES: caPem },
        }),
      })),
    ];
    for (const peer of peers) {
      if (args.peerN === 0) break;
      const version = await versionOf(peer.bin, peer.versionArgs);
      if (version === undefined) {
        console.log(`bench: skipped ${peer.label}: ${peer.missing}`);
        continue;
      }
      console.error(`bench: ${peer.label} (${version}), ${args.peerN} certificates...`);
      const c = await countedAtCa(stagingLog, () =>
        runPeer(peer.tag, peerHosts(peer.tag), peer.command),
      );
      const ok = args.peerN - c.value.failures.length;
      if (c.value.failures.length) {
        notes.push(
          `${peer.label}: ${c.value.failures.length} failed: ${c.value.failures.slice(0, 2).join('; ')}`,
        );
      }
      rows.push({
        group: 'no VA sleep',
        client: `${peer.label} (${version.replace(/^lego version /, '').slice(0, 40)})`,
        certs: ok,
        wallMs: c.value.wallMs,
        ...(c.newOrders > 0 && { caPerOrder: c.requests / c.newOrders }),
        note: 'one process per certificate, one account',
      });
    }

    await cattle.close();
    cattle = undefined;
    await env.stop();
    env = undefined;

    // ---- 6. PEBBLE_VA_NOSLEEP unset -------------------------------------------
    if (args.slowN > 0) {
      console.error(`bench: PEBBLE_VA_NOSLEEP unset, ${args.slowN} certificates each...`);
      env = await startDevEnv({ pebble: { noSleep: false, nonceRejectPercent: 0 } });
      const slowLog = env.staging.logPath;
      const slowNames = Array.from({ length: args.slowN }, (_, i) => `s${i + 1}.bench.test`);
      const slowState = path.join(env.dir, 'slow-state');
      await mkdir(slowState, { recursive: true });
      const s1 = await countedAtCa(slowLog, () =>
        runChild<PassReport>(
          'bench-pass.ts',
          sidecarEnvFor(env as DevEnv, {
            STATE_DIR: slowState,
            DOMAINS: slowNames.join(','),
            STAGING: 'true',
            LOG_LEVEL: 'warn',
            LOG_FORMAT: 'json',
          }),
        ),
      );
      if (s1.value.report.ready !== args.slowN) {
        failures.push(`VA sleep: the sidecar got ${s1.value.report.ready}/${args.slowN} ready`);
      }
      rows.push({
        group: 'VA sleep',
        client: 'acme-sidecar once, VA sleep on',
        certs: s1.value.report.ready,
        wallMs: s1.value.report.wallMs,
        caPerOrder: s1.requests / Math.max(1, s1.newOrders),
        rssMB: s1.value.report.maxRssMB,
        cpuS: (s1.value.report.cpuUserMs + s1.value.report.cpuSystemMs) / 1000,
        note: 'PEBBLE_VA_NOSLEEP unset (0-4 s per validation)',
      });
      const s2 = await countedAtCa(slowLog, () =>
        runChild<BareReport>(
          'bench-bare.ts',
          bareEnv(
            env as DevEnv,
            slowNames.map((h) => `b${h}`),
          ),
        ),
      );
      if (s2.value.report.ok !== args.slowN) {
        failures.push(
          `VA sleep: bare got ${s2.value.report.ok}/${args.slowN}: ${s2.value.report.errors.join('; ')}`,
        );
      }
      rows.push({
        group: 'VA sleep',
        client: 'bare acme-client, VA sleep on',
        certs: s2.value.report.ok,
        wallMs: s2.value.report.wallMs,
        caPerOrder: s2.requests / Math.max(1, s2.newOrders),
        rssMB: s2.value.report.maxRssMB,
        cpuS: (s2.value.report.cpuUserMs + s2.value.report.cpuSystemMs) / 1000,
        note: 'PEBBLE_VA_NOSLEEP unset',
      });
    }

    // ---- report ---------------------------------------------------------------
    const perCert = (r: Row) => (r.certs > 0 ? r.wallMs / r.certs : NaN);
    const baseline = (r: Row) => {
      const b = rows.find((x) => x.group === r.group && x.client.startsWith('acme-sidecar'));
      return b ? perCert(b) : NaN;
    };
    console.log(
      `acme-sidecar benchmark: Pebble 2.9 + nginx on 127.0.0.1, ${os.availableParallelism()} cores ` +
        `(${os.cpus()[0]?.model.trim() ?? '?'}), load average ${os
          .loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')} at the end, ` +
        `N=${n}, peers ${args.peerN}, VA-sleep rows ${args.slowN}`,
    );
    console.log(
      table(
        [
          'client',
          'certs',
          'wall s',
          's/cert',
          'x sidecar',
          'ACME req/order (at CA)',
          'peak RSS MB',
          'CPU s',
          'note',
        ],
        rows.map((r) => [
          r.client,
          String(r.certs),
          sec(r.wallMs),
          fix(perCert(r) / 1000, 3),
          fix(perCert(r) / baseline(r), 2),
          r.caPerOrder === undefined ? '-' : fix(r.caPerOrder, 2),
          r.rssMB === undefined ? '-' : fix(r.rssMB, 0),
          r.cpuS === undefined ? '-' : fix(r.cpuS, 1),
          r.note ?? '',
        ]),
      ),
    );
    console.log(
      `sidecar/bare wall time: ${fix(sidecarMs / bareMs, 2)} (same N, same CA). "x sidecar": a row's time per ` +
        'certificate over the sidecar row of the same Pebble setting (peer/sidecar for the peers).',
    );
    if (idle) {
      const { p2, w2 } = idle;
      console.log(
        `idle pass (${n} valid): ${fix(p2.report.wallMs / 1000, 2)} s, ${p2.report.acmeRequests} ACME requests ` +
          `(${byKind(p2.report.acmeByStep, 1)}), ` +
          `${w2.writes + w2.actions + w2.deletes} platform writes, ${w2.reads} platform reads, ` +
          `${fix((p2.report.cpuUserMs + p2.report.cpuSystemMs) / 1000, 1)} s process CPU (${fix(p2.report.passCpuMs / 1000, 2)} s in the pass itself), ` +
          `peak RSS ${fix(p2.report.maxRssMB, 0)} MB`,
      );
    }
    for (const s of startup) console.log(`start-up: ${s}`);
    for (const note of notes) console.log(note);
    console.log(
      'ACME req/order (at CA) counts every request Pebble served during the row (directory, nonce, account ' +
        'included) over the orders placed; wall s is measured around the work inside each child ' +
        '(sidecar, bare) or around all its processes (peers).',
    );
    if (args.verbose) {
      console.error(`bench: pass 1 report: ${JSON.stringify(p1.report)}`);
      console.error(`bench: bare report: ${JSON.stringify(bare.report)}`);
    }
    if (args.idle) {
      const idleRun = await benchIdle({ n: args.idle, passes: 3, build: false });
      for (const l of idleRun.lines) console.log(l);
      failures.push(...idleRun.failures);
    }
    if (failures.length) {
      for (const f of failures) console.error(`bench: ERROR: ${f}`);
      return 1;
    }
    return 0;
  } finally {
    await cattle?.close();
    await env?.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ERROR: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
