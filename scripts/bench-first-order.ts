/**
 * The built CLI's start-up alone (issue 15, goal 2): ms from spawning
 * `node dist/src/cli.js once` (static platform, one name, fresh state) to
 * its "order placed" log line, against the devenv's Pebble and nginx. The
 * same measurement as `npm run bench`'s start-up row, without the rest.
 *
 * With --cpu-prof DIR each spawn is profiled from its preload (--import)
 * up to its "order placed" line (a V8 CPU profile through node:inspector,
 * written to DIR), and the script prints the self time by file (bundle
 * chunk or node: internal) and by function of the median run, for finding
 * what the start-up spends its time on. With --timeline, the median run's
 * log lines (LOG_LEVEL=debug) with their ms after spawn.
 *
 * With --cpu, each run's CPU time (user + system) at that line as well.
 *
 * Usage: npx tsx scripts/bench-first-order.ts [--runs 7] [--no-build] [--cpu] [--cpu-prof DIR] [--timeline]
 *        [--compare a/cli.js,b/cli.js]  (built CLIs run in turn, a median for each)
 *        [--node-arg ARG]...  (passed to node before the script, e.g. --node-arg=-r --node-arg=./x.cjs)
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sidecarEnvFor, startDevEnv, type DevEnv } from '../devenv/index.js';
import { buildCli } from './build.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Preloaded with --cpu: prints the process's CPU time (user + system, ms)
 * when it writes its "order placed" line: a figure that the other
 * processes of a busy machine disturb less than the wall time.
 */
const CPU_AT_ORDER = `const write = process.stderr.write.bind(process.stderr);
let done = false;
process.stderr.write = (chunk, ...rest) => {
  if (!done && String(chunk).includes('"order placed"')) {
    done = true;
    const u = process.cpuUsage();
    write('CPU_AT_ORDER ' + ((u.user + u.system) / 1000).toFixed(0) + '\\n');
  }
  return write(chunk, ...rest);
};
`;

/** Preloaded with --cpu-prof: profiles the process until its "order placed" log line. */
const PROFILER = `import inspector from 'node:inspector';
import { writeFileSync } from 'node:fs';
const s = new inspector.Session();
s.connect();
s.post('Profiler.enable');
s.post('Profiler.setSamplingInterval', { interval: 200 });
s.post('Profiler.start');
const write = process.stderr.write.bind(process.stderr);
let done = false;
process.stderr.write = (chunk, ...rest) => {
  if (!done && String(chunk).includes('"order placed"')) {
    done = true;
    s.post('Profiler.stop', (err, r) => { if (!err) writeFileSync(process.env.PROF_OUT, JSON.stringify(r.profile)); });
  }
  return write(chunk, ...rest);
};
`;

export interface FirstOrderRun {
  /** ms from spawn to the "order placed" line, undefined if there was none. */
  ms: number | undefined;
  /** CPU ms at the "order placed" line (with --cpu). */
  cpuMs?: number;
  /** Each JSON log line's message with its ms after spawn. */
  timeline: { ms: number; message: string }[];
}

/** The built CLI's `once` for one name: ms from spawn to its first "order placed" log line. */
export async function firstOrderOfCli(
  env: DevEnv,
  stateDir: string,
  name: string,
  opts: { nodeArgs?: readonly string[]; env?: Record<string, string>; cli?: string } = {},
): Promise<FirstOrderRun> {
  const spawnedAt = Date.now();
  const child = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), opts.cli ?? path.join(ROOT, 'dist/src/cli.js'), 'once'],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...sidecarEnvFor(env, {
          STATE_DIR: stateDir,
          DOMAINS: name,
          STAGING: 'true',
          LOG_LEVEL: 'info',
          LOG_FORMAT: 'json',
          ...opts.env,
        }),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0)
    throw new Error(`dist/src/cli.js once exited ${String(code)}: ${stderr.slice(-2000)}`);
  const run: FirstOrderRun = { ms: undefined, timeline: [] };
  for (const line of stderr.split('\n')) {
    if (line.startsWith('CPU_AT_ORDER ')) run.cpuMs = Number(line.slice('CPU_AT_ORDER '.length));
    if (!line.startsWith('{')) continue;
    const l = JSON.parse(line) as { message?: string; timestamp?: string };
    if (!l.timestamp) continue;
    const ms = Date.parse(l.timestamp) - spawnedAt;
    run.timeline.push({ ms, message: l.message ?? '' });
    if (l.message === 'order placed' && run.ms === undefined) run.ms = ms;
  }
  return run;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (ms) by file and by function of a V8 CPU profile. */
function selfTimes(p: Profile): { byFile: Map<string, number>; byFn: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byFile = new Map<string, number>();
  const byFn = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    if (!n) return;
    const file =
      n.callFrame.url.replace(/^file:\/\/.*\/dist\/src\//, '') ||
      '(' + n.callFrame.functionName + ')';
    byFile.set(file, (byFile.get(file) ?? 0) + ms);
    const fn = `${n.callFrame.functionName || '(anon)'} ${file}:${n.callFrame.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + ms);
  });
  return { byFile, byFn };
}

/**
 * Inclusive time (ms) of module loading: of each npm package's CommonJS
 * wrapper in the bundle (esbuild names it by the file's path) and of each
 * chunk's top level (an ES package bundled in is evaluated there).
 */
function loadTimes(p: Profile): Map<string, number> {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (!f) break;
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f.functionName)?.[1];
      if (pkg) seen.add(`package ${pkg}`);
      if (f.functionName === '' && f.lineNumber === 0 && f.url.includes('/dist/src/'))
        seen.add(`chunk top level ${f.url.replace(/^.*\/dist\/src\//, '')}`);
    }
    for (const k of seen) out.set(k, (out.get(k) ?? 0) + ms);
  });
  return out;
}

function top(m: Map<string, number>, k: number): string {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([name, ms]) => `  ${ms.toFixed(1).padStart(7)} ms  ${name}`)
    .join('\n');
}

/** --compare: the given built CLIs, run in turn `runs` times each; the median of each. */
async function compare(
  env: DevEnv,
  clis: readonly string[],
  runs: number,
  cpuPreload: string | undefined,
): Promise<void> {
  const wall = clis.map((): number[] => []);
  const cpu = clis.map((): number[] => []);
  for (let i = 1; i <= runs; i++) {
    for (const [k, cli] of clis.entries()) {
      const state = await mkdtemp(path.join(os.tmpdir(), 'bench-first-order-'));
      try {
        const run = await firstOrderOfCli(env, state, `cmp${i}-${k}.bench.test`, {
          cli,
          nodeArgs: cpuPreload ? ['--import', cpuPreload] : [],
        });
        if (run.ms === undefined) throw new Error(`${cli} run ${i}: no "order placed" line`);
        wall[k]?.push(run.ms);
        if (run.cpuMs !== undefined) cpu[k]?.push(run.cpuMs);
      } finally {
        await rm(state, { recursive: true, force: true });
      }
    }
  }
  const median = (xs: readonly number[]) =>
    [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const [k, cli] of clis.entries()) {
    console.log(
      `${cli}: first order median ${median(wall[k] ?? [])} ms` +
        (cpuPreload ? `, CPU median ${median(cpu[k] ?? [])} ms` : '') +
        ` (${runs} runs, interleaved)`,
    );
  }
  console.log(
    `load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let runs = 7;
  let doBuild = true;
  let timeline = false;
  let cpu = false;
  const nodeArgs: string[] = [];
  let clis: string[] | undefined;
  let profDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') runs = Number(argv[++i]);
    else if (a === '--no-build') doBuild = false;
    else if (a === '--timeline') timeline = true;
    else if (a === '--cpu') cpu = true;
    else if (a === '--node-arg') nodeArgs.push(argv[++i] ?? '');
    else if (a === '--compare') clis = (argv[++i] ?? '').split(',').map((c) => path.resolve(c));
    else if (a === '--cpu-prof') profDir = path.resolve(argv[++i] ?? 'first-order-prof');
    else {
      console.error(`bench-first-order: unknown argument ${String(a)}`);
      process.exit(2);
    }
  }
  if (doBuild) await buildCli(path.join(ROOT, 'dist', 'src'));
  if (profDir) {
    await mkdir(profDir, { recursive: true });
    await writeFile(path.join(profDir, 'profiler.mjs'), PROFILER);
  }
  const cpuPreload = path.join(os.tmpdir(), `cpu-at-order-${process.pid}.mjs`);
  if (cpu) await writeFile(cpuPreload, CPU_AT_ORDER);
  const env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
  try {
    if (clis) {
      await compare(env, clis, runs, cpu ? cpuPreload : undefined);
      return;
    }
    const results: { i: number; run: FirstOrderRun }[] = [];
    for (let i = 1; i <= runs; i++) {
      const state = await mkdtemp(path.join(os.tmpdir(), 'bench-first-order-'));
      try {
        const run = await firstOrderOfCli(env, state, `first${i}.bench.test`, {
          nodeArgs: [
            ...(profDir ? ['--import', path.join(profDir, 'profiler.mjs')] : []),
            ...(cpu ? ['--import', cpuPreload] : []),
            ...nodeArgs,
          ],
          env: {
            ...(profDir ? { PROF_OUT: path.join(profDir, `run${i}.cpuprofile`) } : {}),
            ...(timeline ? { LOG_LEVEL: 'debug' } : {}),
          },
        });
        if (run.ms === undefined) throw new Error(`run ${i}: no "order placed" line`);
        results.push({ i, run });
      } finally {
        await rm(state, { recursive: true, force: true });
      }
    }
    const sorted = [...results].sort((a, b) => (a.run.ms ?? 0) - (b.run.ms ?? 0));
    const median = sorted[Math.floor(sorted.length / 2)];
    if (!median) return;
    console.log(
      `first order: median ${median.run.ms} ms of ${runs} (${results.map((r) => r.run.ms).join(', ')} ms); ` +
        `load ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
    );
    if (cpu) {
      const cpus = results.map((r) => r.run.cpuMs ?? NaN).sort((a, b) => a - b);
      console.log(
        `CPU (user + system) at the first order: median ${cpus[Math.floor(cpus.length / 2)]} ms (${cpus.join(', ')} ms)`,
      );
    }
    if (timeline) {
      console.log(`run ${median.i}'s log lines:`);
      for (const t of median.run.timeline) {
        console.log(`  ${String(t.ms).padStart(6)} ms  ${t.message}`);
        if (t.message === 'order placed') break;
      }
    }
    if (profDir) {
      const file = path.join(profDir, `run${median.i}.cpuprofile`);
      const p = JSON.parse(await readFile(file, 'utf8')) as Profile;
      const { byFile, byFn } = selfTimes(p);
      console.log(`${file}: self time by file\n${top(byFile, 25)}`);
      console.log(`${file}: self time by function\n${top(byFn, 30)}`);
      console.log(`${file}: module loading, inclusive\n${top(loadTimes(p), 40)}`);
      const total = p.timeDeltas.reduce((a, b) => a + b, 0) / 1000;
      console.log(`profile: ${total.toFixed(0)} ms from preload to "order placed"`);
    }
  } finally {
    await env.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
