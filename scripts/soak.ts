/**
 * `npm run soak -- --minutes 10`: a chaos soak on loopback (issue 16, item 6).
 *
 * Several certificates on a short Pebble 2.9 profile (so they are renewed
 * during the soak), the real staging + production Pebble pair (with
 * PEBBLE_WFE_NONCEREJECT and its validation sleep), a real nginx serving
 * every certificate, the fake Cattle API as the platform (PLATFORM=rancher),
 * and the daemon itself (`node dist/src/cli.js run`). After a fault-free
 * start (every certificate issued from production and served), faults are
 * dealt at random for `--minutes`:
 *
 *   - kill -9 of the daemon (restarted after a moment);
 *   - a CA down for a while (then started again: a new Pebble, new root, no
 *     accounts or orders), or restarted at once;
 *   - a state file corrupted (never live/ or archive/, which it points to);
 *   - a full disk for a while: STATE_DIR is a small tmpfs, filled up;
 *   - nginx reloads;
 *   - the Cattle API failing (500s, malformed JSON, answers slower than
 *     CATTLE_TIMEOUT_SECONDS).
 *
 * Then the faults stop and the soak waits (at most `--settle-minutes`; the
 * default 12 outlasts the retry schedule's second step, 10 minutes, which a
 * certificate that failed twice during the faults waits out) for
 * every certificate to be back in its target state: served by nginx (TLS
 * handshake on 127.0.0.1 with SNI per name), not expired, for that name, its
 * served chain verifying against a root of the production Pebble (one per
 * start of it), and the same certificate pushed to Cattle. Exits 1 when one
 * is not, or the daemon ever exited by itself.
 *
 * Prints the faults injected by kind, the orders per certificate (Pebble's
 * log), the longest time any certificate was out of its target state, and
 * the files kept aside (`*.corrupt-*`). Same `--seed`, same fault schedule.
 *
 * STATE_DIR is a tmpfs mounted for the run (root); without it the disk-full
 * fault is left out, and the summary says so.
 *
 * Usage: npm run soak -- [--minutes 10] [--seed N] [--certs 6]
 *        [--profile-seconds 300] [--settle-minutes 12] [--gap-seconds 8] [--keep]
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  mkdir,
  mkdtemp,
  open,
  readFile,
  readdir,
  rm,
  statfs,
  unlink,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sidecarEnvFor, startDevEnv, type DevEnv, type PebbleInstance } from '../devenv/index.js';
import { startFakeCattle, type FakeCattle } from '../devenv/fake-cattle.js';
import { startPebble, type PebbleOptions } from '../devenv/pebble.js';
import { spawnManaged, type ManagedProcess } from '../devenv/proc.js';
import { DENT_LABEL } from '../src/platform/labels.js';
import { chainVerifiesTo } from '../src/util/x509.js';
import {
  CORRUPTIONS,
  FAULT_KINDS,
  OutageTracker,
  UNNAMED,
  between,
  corruptBytes,
  faultDeck,
  isCorruptible,
  ordersPerCertificate,
  pebbleOrderIds,
  pick,
  seededRandom,
  type FaultKind,
} from './soak-plan.js';
import { parseScriptArgs } from './script-args.js';

const execFileAsync = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const NGINX = '/usr/sbin/nginx';
const PROFILE = 'shortlived';
const TMPFS_BYTES = 8 * 1024 * 1024;

interface Args {
  minutes: number;
  seed: number;
  certs: number;
  profileSeconds: number;
  settleMinutes: number;
  gapSeconds: number;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  return parseScriptArgs<keyof Omit<Args, 'keep'>>({
    script: 'soak',
    usage:
      'usage: npm run soak -- [--minutes 10] [--seed N] [--certs 6] [--profile-seconds 300] [--settle-minutes 12] [--gap-seconds 8] [--keep]',
    argv,
    flags: {
      '--minutes': 'minutes',
      '--seed': 'seed',
      '--certs': 'certs',
      '--profile-seconds': 'profileSeconds',
      '--settle-minutes': 'settleMinutes',
      '--gap-seconds': 'gapSeconds',
    },
    defaults: {
      minutes: 10,
      seed: Math.floor(Math.random() * 2 ** 31),
      certs: 6,
      profileSeconds: 300,
      settleMinutes: 12,
      gapSeconds: 8,
    },
    allowZero: true,
  });
}

function fail(message: string): never {
  console.error(`soak: ${message}`);
  process.exit(2);
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The chain nginx serves for `servername` (leaf first), as PEM. */
function servedChain(port: number, servername: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    sock.setTimeout(5000, () => sock.destroy(new Error(`TLS to ${servername}: timeout`)));
    sock.once('error', reject);
    sock.once('secureConnect', () => {
      const pems: string[] = [];
      let c = sock.getPeerCertificate(true);
      const seen = new Set<string>();
      while (c && c.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        pems.push(new X509Certificate(c.raw).toString());
        c = c.issuerCertificate;
      }
      sock.end();
      resolve(pems);
    });
  });
}

interface Probe {
  ok: boolean;
  why: string;
  serial?: string;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!existsSync(CLI)) fail(`${CLI} is missing: run npm run build first (npm run soak does)`);
  // Two streams from one seed: the schedule (which fault, when) never shifts
  // with what the details drew (a skipped fault draws nothing).
  const schedule = seededRandom(args.seed);
  const random = seededRandom(args.seed ^ 0x5eed5eed);
  const names = Array.from({ length: args.certs }, (_, i) => `s${i + 1}.soak.demo.test`);
  const t0 = Date.now();
  const at = () => secs(Date.now() - t0).padStart(8);
  const say = (s: string) => console.log(`[${at()}] ${s}`);
  console.log(
    `soak: seed ${args.seed}, ${args.certs} certificates, profile ${PROFILE} = ${args.profileSeconds} s, ` +
      `faults for ${args.minutes} min (one every ~${args.gapSeconds} s), settle at most ${args.settleMinutes} min`,
  );

  const base = await mkdtemp(path.join(os.tmpdir(), 'acme-soak-'));
  // mkdtemp makes 0700; nginx workers run as nobody and must reach the webroot.
  await chmod(base, 0o755);
  const stateDir = path.join(base, 'state');
  await mkdir(stateDir, { mode: 0o755 });
  // A full disk for real: STATE_DIR on a small tmpfs (needs root).
  let tmpfs = false;
  let tmpfsWhyNot = '';
  try {
    await execFileAsync('mount', [
      '-t',
      'tmpfs',
      '-o',
      `size=${TMPFS_BYTES},mode=0755`,
      'tmpfs',
      stateDir,
    ]);
    tmpfs = true;
  } catch (err) {
    tmpfsWhyNot = (err as { stderr?: string }).stderr?.trim() || String(err);
  }

  let env: DevEnv | undefined;
  let cattle: FakeCattle | undefined;
  let daemon: ManagedProcess | undefined;
  /** The soak itself is stopping the daemon: its exit is not a crash. */
  let killing = false;
  const pebbles: Record<'staging' | 'production', PebbleInstance | undefined> = {
    staging: undefined,
    production: undefined,
  };
  const extraPebbles: PebbleInstance[] = [];
  let code = 0;
  try {
    const pebbleTuning = {
      profiles: {
        default: { description: '90 days', validityPeriod: 90 * 86_400 },
        [PROFILE]: { description: `${args.profileSeconds} s`, validityPeriod: args.profileSeconds },
      },
      noSleep: false, // Pebble's own 0-15 s validation delay
      nonceRejectPercent: 10,
    };
    env = await startDevEnv({
      baseDir: base,
      certDir: stateDir,
      pebble: pebbleTuning,
      tlsServers: names.map((n) => ({ certName: n, serverNames: [n] })),
      placeholderCerts: true,
      keepTempDir: true,
    });
    const e = env;
    pebbles.staging = e.staging;
    pebbles.production = e.production;
    const productionRoots = [await e.production.getRootPem()];
    const pebbleOpts = (which: 'staging' | 'production'): PebbleOptions => ({
      ...pebbleTuning,
      name: which,
      dir: e.dir,
      listenPort: which === 'staging' ? e.ports.stagingAcme : e.ports.productionAcme,
      managementPort:
        which === 'staging' ? e.ports.stagingManagement : e.ports.productionManagement,
      httpPort: e.ports.http,
      tlsPort: e.ports.tlsAlpn,
      dnsAddress: e.dns.dnsAddress,
      listenerCa: e.listenerCa,
      binaries: e.pebbleBinaries,
    });
    const down = new Set<'staging' | 'production'>();
    const stopPebble = async (which: 'staging' | 'production') => {
      down.add(which);
      await pebbles[which]?.stop();
    };
    const startAgain = async (which: 'staging' | 'production') => {
      const p = await startPebble(pebbleOpts(which));
      pebbles[which] = p;
      extraPebbles.push(p);
      if (which === 'production') productionRoots.push(await p.getRootPem());
      down.delete(which);
    };

    cattle = await startFakeCattle({ accessKey: 'soak-access', secretKey: 'soak-secret-key-7f3a' });
    const c = cattle;
    for (const n of names)
      c.addService({ name: n.split('.')[0] ?? n, labels: { [DENT_LABEL]: n } });

    const reloadArgs = [
      '-p',
      e.nginx.prefixDir,
      '-c',
      e.nginx.confPath,
      '-e',
      e.nginx.errorLogPath,
      '-s',
      'reload',
    ];
    const daemonLog = path.join(base, 'daemon.log');
    const daemonEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...sidecarEnvFor(e, {
        PLATFORM: 'rancher',
        CATTLE_URL: c.url,
        CATTLE_ACCESS_KEY: c.accessKey,
        CATTLE_SECRET_KEY: c.secretKey,
        CATTLE_TIMEOUT_SECONDS: '2',
        STAGING: 'false',
        ACME_PROFILE: PROFILE,
        ACME_TIMEOUT_SECONDS: '10',
        LOOP_TIME: '10',
        HOOK_COMMAND: `${NGINX} ${reloadArgs.join(' ')}`,
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'info',
      }),
    };
    let starts = 0;
    const selfExits: string[] = [];
    const startDaemon = () => {
      starts += 1;
      const d = spawnManaged('acme-sidecar', process.execPath, [CLI, 'run'], {
        logPath: daemonLog,
        env: daemonEnv,
        cwd: ROOT,
      });
      daemon = d;
      void d.exited.then((x) => {
        if (!killing && daemon === d) {
          selfExits.push(`code ${String(x.code)} signal ${String(x.signal)} at ${at().trim()}`);
          say(`the daemon exited by itself (${selfExits.at(-1)}); starting it again`);
          startDaemon();
        }
      });
    };

    // ---- the probe: is each certificate in its target state? ------------
    const probe = async (name: string): Promise<Probe> => {
      let chain: string[];
      try {
        chain = await servedChain(e.ports.https, name);
      } catch (err) {
        return { ok: false, why: `no TLS: ${(err as Error).message}` };
      }
      const leafPem = chain[0];
      if (!leafPem) return { ok: false, why: 'no certificate served' };
      const leaf = new X509Certificate(leafPem);
      const now = Date.now();
      if (Date.parse(leaf.validTo) <= now)
        return { ok: false, why: `expired ${leaf.validTo}`, serial: leaf.serialNumber };
      if (!leaf.checkHost(name))
        return { ok: false, why: 'not for this name', serial: leaf.serialNumber };
      const full = chain.join('');
      if (!productionRoots.some((r) => chainVerifiesTo(full, r))) {
        return { ok: false, why: 'not from the production CA', serial: leaf.serialNumber };
      }
      return { ok: true, why: '', serial: leaf.serialNumber };
    };
    /** The certificate Cattle holds for `name` is the one nginx serves. */
    const pushed = (name: string, serial: string | undefined): boolean =>
      c
        .certificates()
        .some(
          (x) =>
            !x.removed &&
            x.name === name &&
            serial !== undefined &&
            new X509Certificate(String(x.cert)).serialNumber === serial,
        );

    const outages = new OutageTracker();
    let monitoring = false;
    let probes = 0;
    const lastProbe = new Map<string, Probe>();
    const probeAll = async (): Promise<Map<string, Probe>> => {
      const m = new Map<string, Probe>();
      for (const n of names) {
        const p = await probe(n);
        probes += 1;
        m.set(n, p);
        const before = lastProbe.get(n);
        lastProbe.set(n, p);
        if (!monitoring) continue;
        outages.observe(n, p.ok, Date.now());
        if (before?.ok && !p.ok) say(`${n} out of its target state: ${p.why}`);
        if (before && !before.ok && p.ok) say(`${n} back in its target state`);
      }
      return m;
    };
    let monitorStop = false;
    const monitor = (async () => {
      while (!monitorStop) {
        await probeAll();
        await sleep(1000);
      }
    })();

    const allInTarget = async (withCattle: boolean): Promise<boolean> => {
      const m = await probeAll();
      return [...m].every(([n, p]) => p.ok && (!withCattle || pushed(n, p.serial)));
    };
    const waitAll = async (what: string, ms: number): Promise<boolean> => {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (await allInTarget(true)) {
          say(`${what}: every certificate from production, served by nginx and pushed to Cattle`);
          return true;
        }
        await sleep(1000);
      }
      return false;
    };

    // ---- start: no faults until every certificate is in place -----------
    startDaemon();
    if (!(await waitAll('started', 180_000))) {
      throw new Error(`not every certificate reached production in 3 min: ${describe(lastProbe)}`);
    }

    // ---- chaos --------------------------------------------------------------
    monitoring = true;
    const deal = faultDeck(schedule);
    const faults = new Map<FaultKind, number>(FAULT_KINDS.map((k) => [k, 0]));
    const details: string[] = [];
    const background: Promise<void>[] = [];
    const fillerPath = path.join(stateDir, '.soak-filler');
    let diskFull = false;
    const chaosMs = args.minutes * 60_000;
    const chaosEnd = Date.now() + chaosMs;
    // Windows (CA down, disk full) last a few seconds, a fifth of the run at most.
    const windowMs = () => Math.min(between(random, 4000, 20_000), Math.max(2000, chaosMs / 5));
    const corrupted: { rel: string; bad: Buffer }[] = [];
    /** A CA that is up: production seven times in ten. */
    const pickCa = (): 'staging' | 'production' => {
      const first = random() < 0.7 ? 'production' : 'staging';
      const other = first === 'production' ? 'staging' : 'production';
      if (!down.has(first)) return first;
      if (!down.has(other)) return other;
      throw new Skipped('both CAs are down');
    };

    const inject = async (kind: FaultKind): Promise<string> => {
      switch (kind) {
        case 'kill -9': {
          const d = daemon;
          if (!d) throw new Skipped('the daemon is already down');
          killing = true;
          d.killNow();
          await d.exited;
          killing = false;
          const pause = between(random, 200, 3000);
          background.push(sleep(pause).then(() => startDaemon()));
          daemon = undefined;
          return `restarted after ${secs(pause)}`;
        }
        case 'CA down': {
          const which = pickCa();
          const ms = windowMs();
          await stopPebble(which);
          background.push(sleep(ms).then(() => startAgain(which)));
          return `${which} for ${secs(ms)}`;
        }
        case 'Pebble restart': {
          const which = pickCa();
          await stopPebble(which);
          await startAgain(which);
          return which;
        }
        case 'corrupt record': {
          const files = (await listFiles(stateDir)).filter(isCorruptible);
          if (files.length === 0) throw new Skipped('no state file');
          const rel = pick(random, files);
          const how = pick(random, CORRUPTIONS);
          const full = path.join(stateDir, rel);
          const good = await readFile(full).catch(() => undefined);
          if (!good) throw new Skipped(`${rel} vanished`);
          const bad = corruptBytes(how, good, random);
          // In place, like a bad disk (not through a rename); a full disk may refuse it.
          try {
            await writeFile(full, bad);
          } catch (err) {
            throw new Skipped(`${rel}: could not write (${(err as NodeJS.ErrnoException).code})`);
          }
          corrupted.push({ rel, bad });
          return `${rel} (${how})`;
        }
        case 'disk full': {
          if (!tmpfs) throw new Skipped('no tmpfs');
          if (diskFull) throw new Skipped('the disk is already full');
          const ms = windowMs();
          await fill(stateDir, fillerPath);
          diskFull = true;
          background.push(
            sleep(ms).then(async () => {
              await unlink(fillerPath).catch(() => undefined);
              diskFull = false;
            }),
          );
          return `for ${secs(ms)}`;
        }
        case 'nginx reload': {
          await execFileAsync(NGINX, reloadArgs);
          return '';
        }
        case 'Cattle API fault': {
          const times = Math.ceil(between(random, 1, 6));
          const f = pick(random, [
            {
              what: 'GET services 500',
              m: { method: 'GET', pathIncludes: '/services' },
              r: { status: 500 },
            },
            {
              what: 'certificate writes 500',
              m: { method: 'PUT', pathIncludes: '/certificates' },
              r: { status: 500 },
            },
            {
              what: 'certificate list 503',
              m: { method: 'GET', pathIncludes: '/certificates' },
              r: { status: 503 },
            },
            {
              what: 'services malformed JSON',
              m: { method: 'GET', pathIncludes: '/services' },
              r: { status: 200, body: '{"data": [' },
            },
            {
              what: 'services slower than the timeout',
              m: { method: 'GET', pathIncludes: '/services' },
              r: { delayMs: 3000 },
            },
          ] as const);
          c.fail({ ...f.m, times }, { ...f.r });
          return `${f.what} x${times}`;
        }
      }
    };

    let again: FaultKind | undefined;
    say(`chaos for ${args.minutes} min`);
    while (Date.now() < chaosEnd) {
      await sleep(
        Math.min(
          between(schedule, 0.3, 1.7) * args.gapSeconds * 1000,
          Math.max(0, chaosEnd - Date.now()),
        ),
      );
      if (Date.now() >= chaosEnd) break;
      const kind = again ?? deal();
      again = undefined;
      let detail: string;
      try {
        detail = await inject(kind);
      } catch (err) {
        if (err instanceof Skipped) {
          // Dealt again next time: every kind still comes up in each round.
          again = kind;
          say(`fault ${kind} skipped: ${err.message}; next time`);
          continue;
        }
        detail = `failed to inject: ${(err as Error).message.split('\n')[0]}`;
      }
      faults.set(kind, (faults.get(kind) ?? 0) + 1);
      details.push(`${at().trim()} ${kind}${detail ? `: ${detail}` : ''}`);
      say(`fault ${kind}${detail ? `: ${detail}` : ''}`);
    }

    // ---- settle: faults off, wait for the target state ------------------------
    say('faults off; settling');
    c.clearFaults();
    await Promise.all(background);
    await unlink(fillerPath).catch(() => undefined);
    for (const which of ['staging', 'production'] as const)
      if (down.has(which)) await startAgain(which);
    if (!daemon) startDaemon();
    const settleStart = Date.now();
    const settled = await waitAll('settled', args.settleMinutes * 60_000);
    const settleMs = Date.now() - settleStart;
    monitorStop = true;
    await monitor;
    const end = Date.now();

    // ---- figures ---------------------------------------------------------------
    killing = true;
    await daemon?.stop();
    const daemonLines = parseJsonLines(await readFile(daemonLog, 'utf8').catch(() => ''));
    const pebbleLog = async (which: string) =>
      readFile(path.join(e.dir, `pebble-${which}.log`), 'utf8').catch(() => '');
    const stagingIds = pebbleOrderIds(await pebbleLog('staging'));
    const productionIds = pebbleOrderIds(await pebbleLog('production'));
    const perCert = (ids: string[]) => ordersPerCertificate(ids, daemonLines);
    const sOrders = perCert(stagingIds);
    const pOrders = perCert(productionIds);
    const aside = (await listFiles(stateDir)).filter((f) => f.includes('.corrupt-'));
    const storeCorrupt = daemonLines.filter((l) => l.code === 'STORE_CORRUPT').length;
    const longest = outages.longest(end);

    console.log(
      `\nsoak: seed ${args.seed}, ${secs(end - t0)} in all (chaos ${args.minutes} min, settle ${secs(settleMs)})`,
    );
    console.log(`  faults injected: ${[...faults.values()].reduce((a, b) => a + b, 0)}`);
    for (const [k, n] of faults) console.log(`    ${k}: ${n}`);
    if (!tmpfs) console.log(`    (disk full left out: no tmpfs: ${tmpfsWhyNot})`);
    console.log(`  daemon starts: ${starts}; exits by itself: ${selfExits.length}`);
    for (const x of selfExits) console.log(`    ${x}`);
    console.log(`  orders per certificate (Pebble's log; staging + production):`);
    for (const n of [...names, UNNAMED]) {
      const s = sOrders.get(n) ?? 0;
      const p = pOrders.get(n) ?? 0;
      if (n === UNNAMED && s + p === 0) continue;
      console.log(
        `    ${n === UNNAMED ? 'not named by the daemon (no "order placed" line)' : n}: ${s} + ${p}`,
      );
    }
    console.log(`    all: ${stagingIds.length} + ${productionIds.length}`);
    console.log(
      `  longest time a certificate was not in its target state: ${secs(longest.ms)}${longest.name ? ` (${longest.name})` : ''}`,
    );
    console.log(`  TLS probes through nginx: ${probes}`);
    // What became of each corrupted file: kept aside when the daemon read it,
    // rewritten whole without being read, or still as the soak left it.
    const fate = { 'kept aside': 0, 'rewritten unread': 0, 'never read again': 0 };
    const asideSet = new Set(aside.map((f) => f.replace(/\.corrupt-[^/]*$/, '')));
    const lastBad = new Map(corrupted.map((x) => [x.rel, x.bad]));
    for (const [rel, bad] of lastBad) {
      const now = await readFile(path.join(stateDir, rel)).catch(() => undefined);
      if (asideSet.has(rel)) fate['kept aside'] += 1;
      else if (now && Buffer.compare(now, bad) === 0) fate['never read again'] += 1;
      else fate['rewritten unread'] += 1;
    }
    console.log(
      `  state files corrupted: ${corrupted.length} (${lastBad.size} files: ${Object.entries(fate)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}); STORE_CORRUPT log lines: ${storeCorrupt}`,
    );
    console.log(`  files kept aside (.corrupt-*): ${aside.length}`);
    for (const f of aside) console.log(`    ${f}`);
    console.log(
      `  end state: ${settled ? 'every certificate from production, served by nginx, pushed to Cattle' : `NOT settled: ${describe(lastProbe)}`}`,
    );
    for (const n of names) {
      const p = lastProbe.get(n);
      console.log(
        `    ${n}: ${p?.ok ? 'ok' : `NOT ok (${p?.why ?? 'no probe'})`}${p?.ok && !pushed(n, p.serial) ? ', not on Cattle' : ''}`,
      );
    }
    if (!settled || selfExits.length > 0) code = 1;
    if (args.keep)
      console.log(`  kept: ${base} (daemon.log, state-kept/, acme-devenv-*/pebble-*.log)`);
    console.log(code === 0 ? 'soak: PASS' : 'soak: FAIL');
  } finally {
    killing = true;
    daemon?.killNow();
    cattle?.clearFaults();
    await cattle?.close();
    for (const p of extraPebbles) await p.stop();
    await env?.stop();
    if (tmpfs && args.keep) {
      await execFileAsync('cp', ['-a', stateDir, `${stateDir}-kept`]).catch(() => undefined);
    }
    if (tmpfs) await execFileAsync('umount', ['-l', stateDir]).catch(() => undefined);
    if (!args.keep) await rm(base, { recursive: true, force: true });
  }
  process.exit(code);
}

/** A fault that could not be injected now (its target already down): not counted. */
class Skipped extends Error {}

function describe(m: Map<string, Probe>): string {
  return (
    [...m]
      .filter(([, p]) => !p.ok)
      .map(([n, p]) => `${n}: ${p.why}`)
      .join('; ') || '(all ok, not all on Cattle)'
  );
}

function parseJsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by kill -9
    }
  }
  return out;
}

/** Every file under `dir`, relative and '/'-separated. */
async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => []);
  for (const ent of entries) {
    const r = rel ? `${rel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) out.push(...(await listFiles(dir, r)));
    else if (ent.isFile()) out.push(r);
  }
  return out.sort();
}

/** Fills the file system holding `dir` with one file, to its last byte. */
async function fill(dir: string, filler: string): Promise<void> {
  const st = await statfs(dir);
  const fh = await open(filler, 'w');
  try {
    // Large writes first, then smaller ones: tmpfs allocates whole pages.
    for (const size of [Math.max(1, Math.min(st.bavail * st.bsize, 1 << 20)), 4096, 1]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          const { bytesWritten } = await fh.write(chunk);
          if (bytesWritten < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    await fh.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
