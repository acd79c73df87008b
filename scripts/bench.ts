/**
 * `npm run bench`: N labelled services in the fake Cattle API, real Pebble
 * (PEBBLE_VA_NOSLEEP=1) and nginx on 127.0.0.1.
 *
 *   1. sidecar pass 1, fresh state: time until all N certificates are pushed,
 *      ACME requests per certificate and per order, peak RSS, CPU;
 *   2. a bare acme-client loop ordering N other names (the comparison);
 *   3. sidecar pass 2, everything valid: ACME requests and platform writes
 *      (both must be 0), CPU.
 *
 * Each measured run is a child process (scripts/bench-pass.ts,
 * scripts/bench-bare.ts), so RSS and CPU are its own. Exits 1 if any
 * run did not do (or did more than) the work it is measured on.
 *
 * Usage: npm run bench -- [--n 100] [--staging] [--verbose]   (or BENCH_N=100)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sidecarEnvFor, startDevEnv, type DevEnv } from '../devenv/index.js';
import { startFakeCattle, type FakeCattle, type LoggedRequest } from '../devenv/fake-cattle.js';
import { DENT_LABEL } from '../src/platform/rancher/rancher-platform.js';
import { chainVerifiesTo } from '../src/util/x509.js';
import type { BareReport } from './bench-bare.js';
import type { PassReport } from './bench-pass.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONCURRENCY = 4; // the reconciler's default
const CHILD_TIMEOUT_MS = 10 * 60_000;

interface Args {
  n: number;
  staging: boolean;
  verbose: boolean;
}

function parseArgs(argv: string[]): Args {
  let n = Number(process.env.BENCH_N ?? '100');
  let staging = false;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--n') n = Number(argv[++i]);
    else if (a.startsWith('--n=')) n = Number(a.slice(4));
    else if (a === '--staging') staging = true;
    else if (a === '--verbose' || a === '-v') verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- [--n 100] [--staging] [--verbose]   (or BENCH_N=100)');
      process.exit(0);
    } else {
      console.error(`bench: unknown argument ${JSON.stringify(a)} (try --help)`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench: --n must be a positive integer, got ${String(n)}`);
    process.exit(2);
  }
  return { n, staging, verbose };
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
  /** POST/PUT to resources (certificate creates and updates). */
  writes: number;
  /** POST `?action=...` (load balancer reloads). */
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

/**
 * Orders placed, from the sidecar's request counts ("<step> <status>"): the
 * newOrder POSTs answered 201. When the counts carry no HTTP status (every
 * key is an axios error code instead, see the note printed below), each
 * order is its newOrder step's two requests: the nonce HEAD and the POST.
 */
function ordersOf(byStep: Record<string, number>): { orders: number; exact: boolean } {
  const created = byStep['newOrder 201'];
  if (created !== undefined) return { orders: created, exact: true };
  let inStep = 0;
  for (const [k, v] of Object.entries(byStep)) if (k.startsWith('newOrder ')) inStep += v;
  const exact = !Object.keys(byStep).some((k) => /^\S+ \D/.test(k));
  return { orders: exact ? 0 : inStep / 2, exact };
}

/** Certificates the sidecar stored per ACME phase (certs/<name>/<phase>.json): a cross-check of the order count. */
async function storedAcmeCerts(stateDir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(path.join(stateDir, 'certs')).catch(() => [])) {
    for (const phase of ['staging', 'production']) {
      if (existsSync(path.join(stateDir, 'certs', name, `${phase}.json`))) n++;
    }
  }
  return n;
}

const sec = (ms: number) => (ms / 1000).toFixed(1);
const fix = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Requests per order by step, for the theoretical-minimum comparison. */
function stepBreakdown(byStep: Record<string, number>, orders: number): string {
  const steps = new Map<string, number>();
  for (const [k, v] of Object.entries(byStep)) {
    const step = k.split(' ')[0] ?? k;
    steps.set(step, (steps.get(step) ?? 0) + v);
  }
  return [...steps]
    .map(([s, v]) => `${s} ${orders > 0 ? fix(v / orders, 2) : String(v)}`)
    .join(', ');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const { n } = args;
  const target = args.staging ? 'staging' : 'production';
  let env: DevEnv | undefined;
  let cattle: FakeCattle | undefined;

  const onSignal = () => {
    running?.kill('SIGKILL');
    void Promise.allSettled([cattle?.close(), env?.stop()]).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const tSetup = performance.now();
    env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
    cattle = await startFakeCattle();
    const names = Array.from({ length: n }, (_, i) => `h${i + 1}.bench.test`);
    names.forEach((host, i) =>
      cattle?.addService({ name: `svc-${i + 1}`, labels: { [DENT_LABEL]: host } }),
    );
    console.error(
      `bench: environment up in ${sec(performance.now() - tSetup)} s; N=${n}, STAGING=${String(args.staging)}`,
    );

    const vars = sidecarEnvFor(env, {
      PLATFORM: 'rancher',
      CATTLE_URL: cattle.url,
      CATTLE_ACCESS_KEY: cattle.accessKey,
      CATTLE_SECRET_KEY: cattle.secretKey,
      STAGING: String(args.staging),
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
    });
    const failures: string[] = [];

    // ---- sidecar pass 1: fresh state -----------------------------------------
    console.error('bench: sidecar pass 1 (fresh state)...');
    let mark = cattle.requests.length;
    const p1 = await runChild<PassReport>('bench-pass.ts', vars);
    const w1 = countWrites(cattle.requests.slice(mark));
    const root = await (args.staging ? env.staging : env.production).getRootPem();
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
    if (p1.report.ready !== n || p1.report.total !== n || missing.length || wrongCa.length) {
      console.error(
        `bench: ERROR: pass 1 did not do the work: ${p1.report.ready}/${p1.report.total} ready ` +
          `(expected ${n}); ${missing.length} not on the platform (${missing.slice(0, 5).join(', ')}); ` +
          `${wrongCa.length} not from the ${target} CA (${wrongCa.slice(0, 5).join(', ')})`,
      );
      if (p1.report.notReady.length) console.error(JSON.stringify(p1.report.notReady, null, 2));
      if (p1.report.discoveryError) console.error(`discovery: ${p1.report.discoveryError}`);
      return 1;
    }

    // ---- bare acme-client loop ------------------------------------------------
    console.error(`bench: bare acme-client loop (${target} CA only)...`);
    const ca = args.staging ? env.staging : env.production;
    const bare = await runChild<BareReport>('bench-bare.ts', {
      BENCH_DIRECTORY_URL: ca.directoryUrl,
      BENCH_CA_PEM_PATH: env.caPemPath,
      BENCH_WEBROOT: env.webroot,
      BENCH_HOSTS: Array.from({ length: n }, (_, i) => `b${i + 1}.bench.test`).join(','),
      BENCH_CONCURRENCY: String(CONCURRENCY),
    });
    if (bare.report.ok !== n) {
      failures.push(
        `bare acme-client got ${bare.report.ok}/${n} certificates: ${bare.report.errors.join('; ')}`,
      );
    }

    // ---- sidecar pass 2: everything valid -------------------------------------
    console.error('bench: sidecar pass 2 (everything valid)...');
    mark = cattle.requests.length;
    const p2 = await runChild<PassReport>('bench-pass.ts', vars);
    const w2 = countWrites(cattle.requests.slice(mark));
    if (p2.report.ready !== n) failures.push(`pass 2: ${p2.report.ready}/${n} ready`);
    if (p2.report.acmeRequests !== 0) {
      failures.push(
        `pass 2 made ${p2.report.acmeRequests} ACME requests (expected 0): ${JSON.stringify(p2.report.acmeByStep)}`,
      );
    }
    if (w2.writes + w2.actions + w2.deletes !== 0) {
      failures.push(
        `pass 2 made ${w2.writes} platform writes, ${w2.actions} actions, ${w2.deletes} deletes (expected 0)`,
      );
    }

    if (args.verbose) {
      for (const [label, r] of [
        ['pass 1', p1],
        ['bare', bare],
        ['pass 2', p2],
      ] as const) {
        console.error(`bench: ${label} report: ${JSON.stringify(r.report)}`);
      }
    }

    // ---- report ---------------------------------------------------------------
    const { orders: o1, exact: countsExact } = ordersOf(p1.report.acmeByStep);
    const stored = await storedAcmeCerts(env.certDir);
    if (stored !== o1) {
      failures.push(`pass 1: ${o1} orders counted but ${stored} ACME certificates stored`);
    }
    const oBare = n; // one order per certificate (asserted by ok === n)
    const cpu = (r: { cpuUserMs: number; cpuSystemMs: number }) =>
      `${sec(r.cpuUserMs + r.cpuSystemMs)} (${sec(r.cpuUserMs)}+${sec(r.cpuSystemMs)})`;
    const ordersLabel = args.staging ? 'staging only' : 'staging+prod';
    const rows: string[][] = [
      [
        'orders per certificate',
        `${fix(o1 / n, 2)} (${ordersLabel})`,
        `1 (${target} only)`,
        fix(ordersOf(p2.report.acmeByStep).orders / n, 0),
      ],
      [
        'wall time (s): pass [process]',
        `${sec(p1.report.wallMs)} [${sec(p1.totalMs)}]`,
        `${sec(bare.report.wallMs)} [${sec(bare.totalMs)}]`,
        `${fix(p2.report.wallMs / 1000, 2)} [${sec(p2.totalMs)}]`,
      ],
      [
        'certificates per second',
        fix(n / (p1.report.wallMs / 1000), 2),
        fix(n / (bare.report.wallMs / 1000), 2),
        '-',
      ],
      [
        'ACME requests (total)',
        String(p1.report.acmeRequests),
        String(bare.report.acmeRequests),
        String(p2.report.acmeRequests),
      ],
      [
        'ACME requests per certificate',
        fix(p1.report.acmeRequests / n),
        fix(bare.report.acmeRequests / n),
        fix(p2.report.acmeRequests / n),
      ],
      [
        'ACME requests per order',
        fix(p1.report.acmeRequests / o1),
        fix(bare.report.acmeRequests / oBare),
        '-',
      ],
      [
        'peak RSS (MB)',
        fix(p1.report.maxRssMB, 0),
        fix(bare.report.maxRssMB, 0),
        fix(p2.report.maxRssMB, 0),
      ],
      ['CPU user+sys (s)', cpu(p1.report), cpu(bare.report), cpu(p2.report)],
      ['platform writes (POST/PUT)', String(w1.writes), '-', String(w2.writes)],
      [
        'platform reads / LB actions',
        `${w1.reads} / ${w1.actions}`,
        '-',
        `${w2.reads} / ${w2.actions}`,
      ],
    ];
    console.log(
      `acme-sidecar benchmark: N=${n} certificates, Pebble (VA no-sleep) + nginx + fake Cattle, ` +
        `127.0.0.1, ${os.availableParallelism()} cores, concurrency ${CONCURRENCY}`,
    );
    console.log(
      table(['', 'sidecar pass 1', 'bare acme-client', 'sidecar pass 2 (all valid)'], rows),
    );
    console.log(
      `Not like for like: per certificate the sidecar places ${fix(o1 / n, 0)} order(s) (${ordersLabel}), ` +
        `self-checks each token over HTTP and pushes to the platform; the bare loop places 1 order ` +
        `(${target} CA) and pushes nothing. Compare "ACME requests per order". Both use acme-client ` +
        `(a fresh nonce HEAD before every signed request) and poll with backoff 1-10 s.`,
    );
    console.log(
      `sidecar pass 1 ACME requests per order, by step: ${stepBreakdown(p1.report.acmeByStep, o1)}`,
    );
    console.log(
      `bare acme-client ACME requests per order, by method: ${stepBreakdown(bare.report.acmeByMethod, oBare)}`,
    );
    if (!countsExact) {
      console.log(
        "note: the sidecar's ACME request counts carry axios error codes (ERR_BAD_RESPONSE/ERR_BAD_REQUEST) " +
          'instead of HTTP statuses: acme-client sets validateStatus to reject every response, so the adapter ' +
          'wrapper in src/acme/http.ts takes its catch branch for all of them. Orders = newOrder-step requests / 2, ' +
          'cross-checked against the certificates stored.',
      );
    }
    console.log(
      `wall time: "pass" is measured inside the child around the work; [process] includes Node + tsx start-up.`,
    );

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
