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
 *   6. the built `once`'s peak RSS over --once-memory certificates, staging
 *      then production (scripts/bench-once-memory.ts);
 *   7. the daemon (`dist/src/cli.js run`) idle over --idle certificates: its
 *      passes' CPU, reads and writes, and its RSS once settled
 *      (scripts/bench-idle.ts);
 * and the built CLI's start-up: from process start to its first order, and
 * `healthcheck`'s wall time. Rows 1 and 2 run for each size of --n (issue
 * 15 names 50 and 100). Last, a table of issue 15's goals: each figure as
 * this run measured it, and whether the goal held.
 *
 * "ACME requests per order" is counted at the CA: Pebble logs one line per
 * request, so every client is counted the same way. Exits 1 if a run did not
 * do (or did more than) the work it is measured on.
 *
 * Usage: npm run bench -- [--n 50,100] [--rounds 3] [--peer-n 10] [--slow-n 10] [--idle 1000]
 *        [--once-memory 100] [--node image|current] [--verbose]   (or BENCH_N=50,100)
 *
 * Every row runs on the image's Node (24, devenv/node-dist.ts) unless
 * `--node current`: the bench re-runs itself on it.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sidecarEnvFor, startDevEnv, type DevEnv } from '../devenv/index.js';
import { startFakeCattle, type FakeCattle, type LoggedRequest } from '../devenv/fake-cattle.js';
import { ensureNode24, NODE_PACKAGE } from '../devenv/node-dist.js';
import { DENT_LABEL } from '../src/platform/rancher/rancher-platform.js';
import { DEFAULT_CONCURRENCY } from '../src/domain/types.js';
import { chainVerifiesTo } from '../src/util/x509.js';
import type { BareReport } from './bench-bare.js';
import { buildCli } from './build.js';
import { firstOrderOfCli } from './bench-first-order.js';
import { benchIdle } from './bench-idle.js';
import { benchOnceMemory } from './bench-once-memory.js';
import { imageMallocEnv, imageNodeArgs } from './image-node-args.js';
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
const USAGE =
  'usage: npm run bench -- [--n 50,100] [--rounds 3] [--peer-n 10] [--slow-n 10] [--idle 1000] ' +
  '[--once-memory 100] [--node image|current] [--verbose]   (or BENCH_N=50,100; 0 skips --peer-n, --slow-n, --idle, --once-memory)';

interface Args {
  /** `--idle N`: the daemon's idle passes over N certificates (scripts/bench-idle.ts); 0 skips. */
  idle: number;
  /** `--once-memory N`: the built `once`'s peak RSS over N certificates (scripts/bench-once-memory.ts); 0 skips. */
  onceMemory: number;
  /** `--n 50,100`: the sizes of the sidecar-versus-bare comparison (goal 2 names 50 and 100). */
  sizes: number[];
  /** Rounds of the sidecar-versus-bare comparison, interleaved (ABBA). */
  rounds: number;
  peerN: number;
  slowN: number;
  verbose: boolean;
  /**
   * `--node image` (the default): every row on the Node the image ships
   * (devenv/node-dist.ts, 24), the bench re-running itself on it when started
   * on another; `--node current`: on the Node that started the bench.
   */
  node: 'image' | 'current';
}

function parseArgs(argv: string[]): Args {
  const list = (v: string) => v.split(',').map((x) => Number(x.trim()));
  let sizes = list(process.env.BENCH_N ?? '50,100');
  let peerN: number | undefined;
  let slowN: number | undefined;
  let rounds = 3;
  let verbose = false;
  let idle = 1000;
  let onceMemory = 100;
  let node: Args['node'] = 'image';
  const num = (i: number) => Number(argv[i]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--n') sizes = list(argv[++i] ?? '');
    else if (a.startsWith('--n=')) sizes = list(a.slice(4));
    else if (a === '--rounds') rounds = num(++i);
    else if (a === '--peer-n') peerN = num(++i);
    else if (a === '--slow-n') slowN = num(++i);
    else if (a === '--verbose' || a === '-v') verbose = true;
    else if (a === '--idle') idle = num(++i);
    else if (a === '--once-memory') onceMemory = num(++i);
    else if (a === '--node') {
      const v = argv[++i];
      if (v !== 'image' && v !== 'current') {
        console.error(`bench: --node ${JSON.stringify(v ?? '')}: expected image or current`);
        process.exit(2);
      }
      node = v;
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`bench: unknown argument ${JSON.stringify(a)} (try --help)`);
      process.exit(2);
    }
  }
  const first = sizes[0] ?? 0;
  peerN ??= Math.min(first, 10);
  slowN ??= Math.min(first, 10);
  for (const [name, v] of [
    ...sizes.map((x) => ['--n', x] as const),
    ['--rounds', rounds],
    ['--peer-n', peerN],
    ['--slow-n', slowN],
    ['--idle', idle],
    ['--once-memory', onceMemory],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || ((name === '--n' || name === '--rounds') && v < 1)) {
      console.error(
        `bench: ${name} must be a ${name === '--n' || name === '--rounds' ? 'positive' : 'whole'} number, got ${String(v)}`,
      );
      process.exit(2);
    }
  }
  if (sizes.length === 0) {
    console.error('bench: --n wants one size or more, e.g. --n 50,100');
    process.exit(2);
  }
  return { sizes, rounds, peerN, slowN, verbose, idle, onceMemory, node };
}

interface ChildRun<T> {
  report: T;
  /** Spawn to exit, Node and tsx start-up included. */
  totalMs: number;
}

let running: ReturnType<typeof spawn> | undefined;

/**
 * Runs `node --import tsx <script>` with only `env` (plus PATH); parses its
 * one JSON stdout line. The sidecar's runs (bench-pass.ts) get the image's
 * Node flags and malloc tunables (the Dockerfile's ENTRYPOINT and ENV), so
 * that its rows measure what the image runs; the bare loop and the peers
 * run on plain Node, as a user would run them.
 */
function runChild<T>(script: string, env: Record<string, string>): Promise<ChildRun<T>> {
  const t0 = performance.now();
  const asImage = script === 'bench-pass.ts';
  const nodeArgs = asImage ? imageNodeArgs() : [];
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', path.join(ROOT, 'scripts', script)],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...(asImage && imageMallocEnv()),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
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
  /**
   * Rows are compared with the sidecar row of the same group: `N=<size>` (the
   * peers join the first size's), or 'VA sleep'.
   */
  group: string;
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

/** One of issue 15's goals, as this run measured it. */
interface Goal {
  goal: string;
  figure: string;
  held: boolean;
}

/** One round's run of the sidecar or the bare loop. */
interface RoundRun<T> {
  round: number;
  run: ChildRun<T>;
  wallMs: number;
  caPerOrder: number;
  rssMB: number;
  cpuS: number;
  platformWrites?: number;
}

function medianOf(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The run whose wall time is the median (the lower middle one for an even count). */
function medianRun<T extends { wallMs: number }>(runs: readonly T[]): T {
  const s = [...runs].sort((a, b) => a.wallMs - b.wallMs);
  return s[Math.floor((s.length - 1) / 2)] as T;
}

/** A row of the sidecar-versus-bare comparison: the median round's figures, the spread of the rounds. */
function comparisonRow(
  size: number,
  client: string,
  runs: readonly RoundRun<unknown>[],
  note: string,
): Row {
  const mid = medianRun(runs);
  return {
    group: `N=${size}`,
    client,
    certs: size,
    wallMs: medianOf(runs.map((x) => x.wallMs)),
    caPerOrder: mid.caPerOrder,
    rssMB: mid.rssMB,
    cpuS: mid.cpuS,
    note: `${spread(runs)}; ${note}`,
  };
}

/** "median of 3 rounds, 24.1-31.0 s" */
function spread(runs: readonly { wallMs: number }[]): string {
  const w = runs.map((r) => r.wallMs);
  return runs.length === 1
    ? '1 round'
    : `median of ${runs.length} rounds, ${sec(Math.min(...w))}-${sec(Math.max(...w))} s`;
}

/**
 * The bench measures what ships: the image runs Node 24, this machine may
 * start the bench on another Node (20 here, where `node -e 0` alone takes
 * three times as long). Re-run this script on the image's Node; every child
 * then inherits it through process.execPath. Undefined when already on it.
 */
async function onImageNode(args: Args): Promise<number | undefined> {
  if (args.node === 'current' || process.version === `v${NODE_PACKAGE.version}`) return undefined;
  const { bin, version } = await ensureNode24((line) => console.error(`bench: ${line}`));
  console.error(
    `bench: running on the image's Node v${version} (${bin}); --node current keeps ${process.version}`,
  );
  const child = spawn(
    bin,
    ['--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward).on('SIGTERM', forward);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const reran = await onImageNode(args);
  if (reran !== undefined) return reran;
  const { sizes } = args;
  /** The first size: the idle second pass, the peers and the VA-sleep rows compare with it. */
  const n = sizes[0] as number;
  let env: DevEnv | undefined;
  let cattle: FakeCattle | undefined;
  /** The fake Rancher APIs of the other rounds and sizes. */
  const roundCattles: FakeCattle[] = [];
  const onSignal = () => {
    running?.kill('SIGKILL');
    void Promise.allSettled([
      cattle?.close(),
      ...roundCattles.map((c) => c.close()),
      env?.stop(),
    ]).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  /** Stops the Pebble pair, nginx and the fake Rancher APIs (the memory and idle rows start their own). */
  const closeEnv = async (): Promise<void> => {
    const [c, e] = [cattle, env];
    cattle = undefined;
    env = undefined;
    await c?.close();
    for (const r of roundCattles.splice(0)) await r.close();
    await e?.stop();
  };

  const rows: Row[] = [];
  const notes: string[] = [];
  const failures: string[] = [];
  const startup: string[] = [];
  const goals: Goal[] = [];
  let idle: { p2: ChildRun<PassReport>; w2: Writes } | undefined;
  const comparisons: {
    size: number;
    sidecar: RoundRun<PassReport>[];
    bare: RoundRun<BareReport>[];
  }[] = [];

  try {
    console.error('bench: building dist/ (the CLI measured for start-up)...');
    await buildCli(path.join(ROOT, 'dist', 'src'));

    const tSetup = performance.now();
    env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
    cattle = await startFakeCattle();
    const names = Array.from({ length: n }, (_, i) => `h${i + 1}.bench.test`);
    names.forEach((host, i) =>
      cattle?.addService({ name: `svc-${i + 1}`, labels: { [DENT_LABEL]: host } }),
    );
    console.error(
      `bench: environment up in ${sec(performance.now() - tSetup)} s; N=${sizes.join(',')}`,
    );
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

    // ---- 1+2. sidecar once and the bare acme-client loop, interleaved ---------
    // One run of each is no measurement on a shared machine: the load moves
    // from minute to minute, and the bare loop is bimodal (acme-client polls
    // at once after the challenge and, when the CA has not validated yet,
    // waits its 5 s backoff). So --rounds rounds in ABBA order (the sidecar
    // first in odd rounds, the bare loop first in even ones) so that a
    // drifting load weighs on both alike; the median and the spread are
    // printed. Same CA, same nginx webroot. Each sidecar round starts from
    // fresh state with its own fake Rancher and `size` services (round 1 of
    // the first size keeps the shared one: the idle pass below runs on its
    // state); each bare round has names of its own. Once per size (--n).
    const bareEnv = (ca: DevEnv, hosts: string[]) => ({
      BENCH_DIRECTORY_URL: ca.staging.directoryUrl,
      BENCH_CA_PEM_PATH: ca.caPemPath,
      BENCH_WEBROOT: ca.webroot,
      BENCH_HOSTS: hosts.join(','),
    });
    const root = await env.staging.getRootPem();
    for (const size of sizes) {
      const shared = size === n && size === sizes[0];
      const sidecarRuns: RoundRun<PassReport>[] = [];
      const bareRuns: RoundRun<BareReport>[] = [];
      const sidecarRound = async (r: number): Promise<void> => {
        const own = r === 1 && shared ? undefined : await startFakeCattle();
        if (own) roundCattles.push(own);
        const cat = own ?? (cattle as FakeCattle);
        const hosts = own
          ? Array.from({ length: size }, (_, i) => `h${i + 1}.r${r}.n${size}.bench.test`)
          : names;
        if (own) {
          hosts.forEach((host, i) =>
            own.addService({ name: `svc-${i + 1}`, labels: { [DENT_LABEL]: host } }),
          );
        }
        let roundVars = vars;
        if (own) {
          const stateDir = path.join((env as DevEnv).dir, `state-n${size}-r${r}`);
          await mkdir(stateDir, { recursive: true });
          roundVars = {
            ...vars,
            STATE_DIR: stateDir,
            CATTLE_URL: own.url,
            CATTLE_ACCESS_KEY: own.accessKey,
            CATTLE_SECRET_KEY: own.secretKey,
          };
        }
        console.error(`bench: N=${size} round ${r}: sidecar once (staging only, fresh state)...`);
        const mark = cat.requests.length;
        const c = await countedAtCa(stagingLog, () =>
          runChild<PassReport>('bench-pass.ts', roundVars),
        );
        const p = c.value;
        const w = countWrites(cat.requests.slice(mark));
        const pushed = new Map(
          cat
            .certificates()
            .filter((x) => !x.removed)
            .map((x) => [String(x.name), x]),
        );
        const missing = hosts.filter((h) => !pushed.has(h));
        const wrongCa = hosts.filter((h) => {
          const x = pushed.get(h);
          return x && !chainVerifiesTo(String(x.cert) + String(x.certChain ?? ''), root);
        });
        if (p.report.ready !== size || missing.length || wrongCa.length || c.newOrders !== size) {
          throw new Error(
            `N=${size} round ${r}: the sidecar did not do the work: ${p.report.ready}/${p.report.total} ready ` +
              `(expected ${size}), ${c.newOrders} orders at the CA; ${missing.length} not on the platform ` +
              `(${missing.slice(0, 5).join(', ')}); ${wrongCa.length} not from the staging CA` +
              (p.report.notReady.length ? `\n${JSON.stringify(p.report.notReady, null, 2)}` : ''),
          );
        }
        sidecarRuns.push({
          round: r,
          run: p,
          wallMs: p.report.wallMs,
          caPerOrder: c.requests / c.newOrders,
          rssMB: p.report.maxRssMB,
          cpuS: (p.report.cpuUserMs + p.report.cpuSystemMs) / 1000,
          platformWrites: w.writes,
        });
      };
      const bareRound = async (r: number): Promise<void> => {
        console.error(`bench: N=${size} round ${r}: bare acme-client loop (sequential auto())...`);
        const hosts = Array.from({ length: size }, (_, i) => `b${i + 1}.r${r}.n${size}.bench.test`);
        const c = await countedAtCa(stagingLog, () =>
          runChild<BareReport>('bench-bare.ts', bareEnv(env as DevEnv, hosts)),
        );
        const b = c.value;
        if (b.report.ok !== size) {
          failures.push(
            `N=${size} round ${r}: bare acme-client got ${b.report.ok}/${size}: ${b.report.errors.join('; ')}`,
          );
        }
        bareRuns.push({
          round: r,
          run: b,
          wallMs: b.report.wallMs,
          caPerOrder: c.requests / Math.max(1, c.newOrders),
          rssMB: b.report.maxRssMB,
          cpuS: (b.report.cpuUserMs + b.report.cpuSystemMs) / 1000,
        });
      };
      for (let r = 1; r <= args.rounds; r++) {
        if (r % 2 === 1) {
          await sidecarRound(r);
          await bareRound(r);
        } else {
          await bareRound(r);
          await sidecarRound(r);
        }
        console.error(
          `bench: N=${size} round ${r}: sidecar ${sec(sidecarRuns.at(-1)?.wallMs ?? NaN)} s, bare ${sec(bareRuns.at(-1)?.wallMs ?? NaN)} s; load average ${os
            .loadavg()
            .map((l) => l.toFixed(1))
            .join(' ')}`,
        );
      }
      const p1 = (sidecarRuns.find((x) => x.round === 1) as RoundRun<PassReport>).run;
      const bare = (bareRuns.find((x) => x.round === 1) as RoundRun<BareReport>).run;
      const sMid = medianRun(sidecarRuns);
      comparisons.push({ size, sidecar: sidecarRuns, bare: bareRuns });
      rows.push(
        comparisonRow(
          size,
          'acme-sidecar once (staging only)',
          sidecarRuns,
          `concurrency ${DEFAULT_CONCURRENCY} (MAX_CONCURRENT_ORDERS); ${sMid.platformWrites ?? 0} platform writes; ${fix(sMid.run.report.passCpuMs / 1000, 1)} s CPU in the pass`,
        ),
        comparisonRow(
          size,
          'bare acme-client auto(), sequential',
          bareRuns,
          'one account, default options',
        ),
      );
      notes.push(
        `acme-sidecar, N=${size}: ${fix(p1.report.acmeRequests / size, 2)} requests per order at its HTTP boundary ` +
          `(account set-up included; round 1), by kind: ${byKind(p1.report.acmeByStep, size)}`,
      );
      if (size === n && p1.report.firstOrderMs !== undefined) {
        startup.push(
          `bench-pass.ts (tsx, in-process): first order ${fix(p1.report.firstOrderMs, 0)} ms after process start`,
        );
      }
      notes.push(
        `bare acme-client, N=${size}: ${fix(bare.report.acmeRequests / size, 2)} requests per order at its axios ` +
          `(round 1), by method: ${byKind(bare.report.acmeByMethod, size)}`,
      );
      goals.push({
        goal: `1. ACME requests per order at the CA <= 8 (sidecar, N=${size}, median round)`,
        figure: fix(sMid.caPerOrder, 2),
        held: sMid.caPerOrder <= 8,
      });
      const ratio =
        medianOf(sidecarRuns.map((x) => x.wallMs)) / medianOf(bareRuns.map((x) => x.wallMs));
      goals.push({
        goal: `2. sidecar/bare wall time <= 1 (N=${size}, median over median of ${args.rounds} rounds)`,
        figure: fix(ratio, 2),
        held: ratio <= 1,
      });
    }

    // ---- 3. idle pass ---------------------------------------------------------
    console.error('bench: sidecar second pass (everything valid)...');
    const mark = cattle.requests.length;
    const p2 = await runChild<PassReport>('bench-pass.ts', vars);
    const w2 = countWrites(cattle.requests.slice(mark));
    idle = { p2, w2 };
    if (p2.report.ready !== n) failures.push(`idle pass: ${p2.report.ready}/${n} ready`);
    // ARI: `once` asks the CA's renewalInfo for every certificate on every
    // run (a daemon again only after the CA's Retry-After, 6 h at Pebble),
    // after one directory GET per CA (a new process has none cached).
    // Anything else is work an idle pass must not do.
    const idleAcme = Object.entries(p2.report.acmeByStep).filter(
      ([k, v]) => !k.startsWith('renewalInfo ') && !(k.startsWith('directory ') && v <= 2),
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
    // Three runs, each on fresh state with a name of its own (a valid
    // certificate would be no order at all); the median is the figure.
    const firsts: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const startState = await mkdtemp(path.join(os.tmpdir(), 'bench-startup-'));
      try {
        // As the image starts it: its ENTRYPOINT's Node flags and its malloc tunables.
        const first = (
          await firstOrderOfCli(env, startState, `startup${i}.bench.test`, {
            nodeArgs: imageNodeArgs(),
            env: imageMallocEnv(),
          })
        ).ms;
        if (first === undefined) failures.push(`start-up run ${i}: no "order placed" line`);
        else firsts.push(first);
      } finally {
        await rm(startState, { recursive: true, force: true });
      }
    }
    const firstMs = medianOf(firsts);
    startup.push(
      `node ${imageNodeArgs().join(' ')} dist/src/cli.js once (static platform, 1 name): first order placed ${fix(firstMs, 0)} ms after spawn ` +
        `(median of ${firsts.length}: ${firsts.map((x) => fix(x, 0)).join(', ')} ms)`,
    );
    goals.push({
      goal: '2. first order <= 300 ms after spawn (`node dist/src/cli.js once`, median of 3)',
      figure: `${fix(firstMs, 0)} ms`,
      held: firstMs <= 300,
    });
    const nodeMs = await medianWallMs(['-e', '0'], {});
    const hcMs = await medianWallMs(['dist/src/cli.js', 'healthcheck'], { STATUS_ADDRESS: 'off' });
    startup.push(
      `node dist/src/cli.js healthcheck: ${fix(hcMs / 1000, 2)} s wall (median of 5; \`node -e 0\` takes ${fix(nodeMs / 1000, 2)} s here)`,
    );
    goals.push({
      goal: '2. `healthcheck` <= 0.3 s (median of 5)',
      figure: `${fix(hcMs / 1000, 2)} s`,
      held: hcMs <= 300,
    });

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
        group: `N=${n}`,
        client: `${peer.label} (${version.replace(/^lego version /, '').slice(0, 60)})`,
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
      `acme-sidecar benchmark: Pebble 2.9 + nginx on 127.0.0.1, Node ${process.version}, ${os.availableParallelism()} cores ` +
        `(${os.cpus()[0]?.model.trim() ?? '?'}), load average ${os
          .loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')} at the end, ` +
        `N=${sizes.join(',')}, peers ${args.peerN}, VA-sleep rows ${args.slowN}`,
    );
    console.log(
      `acme-sidecar rows: node ${imageNodeArgs().join(' ')} with ${Object.entries(imageMallocEnv())
        .map(([k, v]) => `${k}=${v}`)
        .join(
          ' ',
        )} (the image's ENTRYPOINT and ENV); the bare loop and the peers: their own defaults`,
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
    for (const { size, sidecar, bare: bareR } of comparisons) {
      const ratios = sidecar.map((x) => {
        const b = bareR.find((y) => y.round === x.round);
        return b ? x.wallMs / b.wallMs : NaN;
      });
      console.log(
        `sidecar/bare wall time, N=${size}: ${fix(medianOf(sidecar.map((x) => x.wallMs)) / medianOf(bareR.map((x) => x.wallMs)), 2)} ` +
          `(median over median of ${ratios.length} interleaved rounds; ABBA, per round: ${ratios.map((x) => fix(x, 2)).join(', ')}); ` +
          `same N, same CA, same webroot.`,
      );
      console.log(
        `rounds (wall s), N=${size}: sidecar ${sidecar.map((x) => sec(x.wallMs)).join(', ')}; bare ${bareR.map((x) => sec(x.wallMs)).join(', ')}. ` +
          'The rows above give the median round and its spread; RSS, CPU and requests per order are of the median run.',
      );
    }
    console.log(
      '"x sidecar": a row\'s time per certificate over the sidecar row of the same N (the peers: of the first N) or of the VA-sleep rows.',
    );
    if (idle) {
      const { p2, w2 } = idle;
      console.log(
        `once again over the ${n} valid certificates (a second run, no order): ${fix(p2.report.wallMs / 1000, 2)} s, ${p2.report.acmeRequests} ACME requests ` +
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
        "(sidecar, bare) or around all its processes (peers); CPU s is the child's user+system time, its start-up under tsx included.",
    );
    if (args.verbose) {
      for (const c of comparisons) {
        console.error(
          `bench: N=${c.size} pass 1 report: ${JSON.stringify(c.sidecar[0]?.run.report)}`,
        );
        console.error(`bench: N=${c.size} bare report: ${JSON.stringify(c.bare[0]?.run.report)}`);
      }
    }
    // The memory and idle rows start a Pebble pair of their own: this one goes first.
    await closeEnv();

    // ---- 6. goal 3: the built `once`'s peak RSS, staging then production -------
    if (args.onceMemory > 0) {
      console.error(`bench: once memory, ${args.onceMemory} certificates...`);
      const mem = await benchOnceMemory({ n: args.onceMemory });
      for (const l of mem.lines) console.log(l);
      failures.push(...mem.failures);
      goals.push({
        goal: `3. once, ${args.onceMemory} certificates (staging then production): peak RSS <= 120 MB`,
        figure: `${fix(mem.peakMB, 0)} MB`,
        held: mem.peakMB <= 120,
      });
    }

    // ---- 7. goals 3 and 4: the daemon idle over --idle certificates ------------
    if (args.idle > 0) {
      console.error(`bench: the daemon idle over ${args.idle} certificates...`);
      const settle = 60;
      const idleRun = await benchIdle({
        n: args.idle,
        passes: 3,
        build: false,
        settleSeconds: settle,
      });
      for (const l of idleRun.lines) console.log(l);
      failures.push(...idleRun.failures);
      const idlePasses = (idleRun.passes ?? []).slice(1);
      if (idleRun.settledRssMB !== undefined) {
        goals.push({
          goal: `3. daemon idle with ${args.idle} certificates: RSS <= 100 MB (${settle} s after its last pass)`,
          figure: `${fix(idleRun.settledRssMB, 0)} MB`,
          held: idleRun.settledRssMB <= 100,
        });
      }
      if (idlePasses.length) {
        const worst = (f: (p: (typeof idlePasses)[number]) => number) =>
          Math.max(...idlePasses.map(f));
        const cpuMs = worst((p) => p.cpuSeconds * 1000);
        const acme = worst((p) => p.acmeRequests);
        const writes = worst((p) => p.platformWrites);
        const reads = worst((p) => p.storeReads / args.idle);
        const perCert = idlePasses.some((p) =>
          Object.keys(p.platform).some((k) => !k.endsWith('(list page)')),
        );
        goals.push(
          {
            goal: `4. idle pass, ${args.idle} certificates: 0 ACME requests, 0 platform writes (worst of ${idlePasses.length} passes)`,
            figure: `${acme} ACME, ${writes} writes`,
            held: acme === 0 && writes === 0,
          },
          {
            goal: '4. idle pass: platform reads are list pages only',
            figure: perCert ? 'per-certificate reads seen' : 'list pages only',
            held: !perCert,
          },
          {
            goal: "4. idle pass: each certificate's store records read at most once",
            figure: `${fix(reads, 2)} reads per certificate`,
            held: reads <= 1,
          },
          {
            goal: '4. idle pass: daemon CPU < 100 ms (acme_sidecar_last_pass_cpu_seconds, worst pass)',
            figure: `${fix(cpuMs, 0)} ms (passes: ${idlePasses.map((p) => fix(p.cpuSeconds * 1000, 0)).join(', ')})`,
            held: cpuMs < 100,
          },
        );
      }
    }

    // ---- goals ----------------------------------------------------------------
    console.log('issue 15 goals, as this run measured them:');
    console.log(
      table(
        ['goal', 'figure', 'held'],
        goals.map((g) => [g.goal, g.figure, g.held ? 'yes' : 'NO']),
      ),
    );
    if (failures.length) {
      for (const f of failures) console.error(`bench: ERROR: ${f}`);
      return 1;
    }
    return 0;
  } finally {
    await closeEnv();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ERROR: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
