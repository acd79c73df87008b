/**
 * `npm run figures:ari`: the closing figures of issue 12, from ONE daemon run
 * of the real sidecar with N certificates on a short Pebble 2.9 profile
 * (default: 10 certificates, 2 minutes), against the staging + production
 * Pebble pair and a real nginx that serves every certificate, all on
 * 127.0.0.1 (devenv). `ACME_PROFILE` names the profile; `RATE_LIMITS` is
 * Let's Encrypt's production budget; nginx is reloaded by HOOK_COMMAND.
 *
 * It runs until every certificate has been renewed at least `--renewals`
 * times by the production CA, probing every name through nginx meanwhile,
 * then prints:
 *
 *   - the number of renewals (production orders replacing a certificate);
 *   - how many orders carried `replaces` (Pebble's log line `ARI: order ...
 *     is a replacement of ...`), and how many were placed again without;
 *   - each renewal relative to expiry: notAfter of the replaced certificate
 *     minus the time its renewal was ordered (closest to expiry, median,
 *     earliest), and minus the time nginx was first seen serving the new one;
 *   - ACME requests per renewal, ARI fetches included: the sidecar's own
 *     counter (`certmanager_http_acme_client_request_count`, every HTTP
 *     exchange with the production CA, nonce HEADs included) and Pebble's
 *     log (`-> calling handler()` lines), both over the steady state (from
 *     the moment every certificate has its first production certificate to
 *     the end), divided by the renewals in that span;
 *   - what the TLS probes saw (an expired certificate served: must be 0) and
 *     whether the rate-limit budget held any renewal back (must be 0).
 *
 * Exits 1 when a certificate was not renewed often enough in time, nginx
 * served an expired certificate, the budget refused a renewal, or a renewal
 * was ordered before the CA's ARI window made it due (issue 12: the daemon
 * renews every certificate inside its window).
 *
 * Usage: npm run figures:ari -- [--certs 10] [--profile-seconds 120]
 *        [--renewals 2] [--timeout-minutes 15] [--keep]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  httpGet,
  sidecarEnvFor,
  startDevEnv,
  tlsServedCert,
  type DevEnv,
} from '../devenv/index.js';
import { freePort } from '../devenv/proc.js';
import { parseScriptArgs } from './script-args.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'src', 'cli.ts');
const NGINX = '/usr/sbin/nginx';
const PROFILE = 'shortlived';

interface Args {
  certs: number;
  profileSeconds: number;
  renewals: number;
  timeoutMinutes: number;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  return parseScriptArgs<keyof Omit<Args, 'keep'>>({
    script: 'figures:ari',
    usage:
      'usage: npm run figures:ari -- [--certs 10] [--profile-seconds 120] [--renewals 2] [--timeout-minutes 15] [--keep]',
    argv,
    flags: {
      '--certs': 'certs',
      '--profile-seconds': 'profileSeconds',
      '--renewals': 'renewals',
      '--timeout-minutes': 'timeoutMinutes',
    },
    defaults: {
      certs: 10,
      profileSeconds: 120,
      renewals: 2,
      timeoutMinutes: 15,
    },
    allowZero: false,
  });
}

type LogLine = Record<string, unknown>;

/** The daemon's JSON log lines as they arrive on stderr. */
function follow(child: ChildProcess): { lines: LogLine[]; stderr: () => string } {
  const lines: LogLine[] = [];
  let buf = '';
  let all = '';
  child.stderr?.on('data', (d: Buffer) => {
    buf += d.toString();
    all += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  child.stdout?.resume();
  return { lines, stderr: () => all };
}

/** Sum of certmanager_http_acme_client_request_count for one CA host, in total and for one step. */
function acmeRequests(metrics: string, host: string): { total: number; renewalInfo: number } {
  let total = 0;
  let renewalInfo = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('certmanager_http_acme_client_request_count{')) continue;
    if (!line.includes(`host="${host}"`)) continue;
    const n = Number(line.slice(line.lastIndexOf(' ') + 1));
    total += n;
    if (line.includes('path="renewalInfo"')) renewalInfo += n;
  }
  return { total, renewalInfo };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const names = Array.from({ length: args.certs }, (_, i) => `c${i + 1}.figures.demo.test`);
  const t0 = Date.now();
  console.log(
    `figures:ari: ${args.certs} certificates, profile ${PROFILE} = ${args.profileSeconds} s, ` +
      `until each has ${args.renewals} renewals (at most ${args.timeoutMinutes} min)`,
  );
  const env: DevEnv = await startDevEnv({
    pebble: {
      profiles: {
        default: { description: '90 days', validityPeriod: 90 * 86_400 },
        [PROFILE]: { description: `${args.profileSeconds} s`, validityPeriod: args.profileSeconds },
      },
    },
    tlsServers: names.map((n) => ({ certName: n, serverNames: [n] })),
    placeholderCerts: true,
    keepTempDir: args.keep,
  });
  let daemon: ChildProcess | undefined;
  let code = 0;
  try {
    const productionHost = new URL(env.production.directoryUrl).host;
    const pebbleLogPath = path.join(env.dir, 'pebble-production.log');
    const pebbleLog = () => readFile(pebbleLogPath, 'utf8');
    const statusPort = await freePort();
    const reload = `${NGINX} -p ${env.nginx.prefixDir} -c ${env.nginx.confPath} -e ${env.nginx.errorLogPath} -s reload`;
    const logStart = (await pebbleLog()).length;
    daemon = spawn(process.execPath, ['--import', 'tsx', CLI, 'run'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...sidecarEnvFor(env, {
          DOMAINS: names.join(','),
          STAGING: 'false',
          ACME_PROFILE: PROFILE,
          RATE_LIMITS: 'production',
          // Only the daemon's own wakeups for renewal times: no regular pass.
          LOOP_TIME: '3600',
          HOOK_COMMAND: reload,
          STATUS_ADDRESS: `127.0.0.1:${statusPort}`,
          LOG_FORMAT: 'json',
          LOG_LEVEL: 'info',
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => daemon?.once('exit', resolve));
    const { lines, stderr } = follow(daemon);
    const metrics = async () => (await httpGet(statusPort, '127.0.0.1', '/metrics')).body;

    const issuedProd = () =>
      lines.filter((l) => l.message === 'certificate issued' && l.phase === 'production');
    const perCert = () => {
      const m = new Map<string, number>(names.map((n) => [n, 0]));
      for (const l of issuedProd()) m.set(String(l.cert), (m.get(String(l.cert)) ?? 0) + 1);
      return m;
    };

    // Probe every name through nginx until done; note what it serves.
    const firstServed = new Map<string, number>(); // serial -> first seen
    const expired: string[] = [];
    let probes = 0;
    let steady:
      { at: number; requests: number; ari: number; pebble: number; renewals: number } | undefined;
    const deadline = t0 + args.timeoutMinutes * 60_000;
    for (;;) {
      for (const n of names) {
        const got = await tlsServedCert(env.ports.https, n).catch(() => undefined);
        if (!got) continue;
        probes += 1;
        const cert = new X509Certificate(got.pem);
        const now = Date.now();
        if (Date.parse(cert.validTo) <= now) {
          expired.push(
            `${n}: ${cert.serialNumber} notAfter ${cert.validTo}, seen ${new Date(now).toISOString()}`,
          );
        }
        if (!firstServed.has(cert.serialNumber.toUpperCase())) {
          firstServed.set(cert.serialNumber.toUpperCase(), now);
        }
      }
      const counts = perCert();
      if (!steady && [...counts.values()].every((c) => c >= 1)) {
        const m = acmeRequests(await metrics(), productionHost);
        steady = {
          at: Date.now(),
          requests: m.total,
          ari: m.renewalInfo,
          pebble:
            (await pebbleLog()).slice(logStart).match(/-> calling handler\(\)$/gm)?.length ?? 0,
          renewals: issuedProd().length - names.length,
        };
      }
      if ([...counts.values()].every((c) => c >= 1 + args.renewals)) break;
      if (Date.now() > deadline) {
        console.error(
          `figures:ari: timed out; production certificates per name: ${JSON.stringify(Object.fromEntries(counts))}`,
        );
        code = 1;
        break;
      }
      if (daemon.exitCode !== null) {
        console.error(
          `figures:ari: the daemon exited (${daemon.exitCode}):\n${stderr().slice(-3000)}`,
        );
        code = 1;
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const endMetrics = acmeRequests(await metrics(), productionHost);
    const endPebble = (await pebbleLog()).slice(logStart);
    const endAt = Date.now();
    daemon.kill('SIGTERM');
    const exitCode = await exited;

    // Renewals: production orders that replace a certificate of ours.
    const issued = issuedProd();
    const notAfterOf = new Map(
      issued.map((l) => [String(l.serial), Date.parse(String(l.notAfter))]),
    );
    const renewalOrders = lines.filter(
      (l) => l.message === 'ordering certificate' && l.phase === 'production' && l.replacing,
    );
    const renewals = issued.length - names.length;
    const ordered = renewalOrders
      .map((l) => (notAfterOf.get(String(l.replacing)) ?? NaN) - Date.parse(String(l.timestamp)))
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    // The new certificate's first sighting in nginx, against the old one's expiry.
    const servedMargins: number[] = [];
    for (const n of names) {
      const mine = issued.filter((l) => l.cert === n);
      for (let i = 1; i < mine.length; i++) {
        const seen = firstServed.get(String(mine[i]!.serial));
        const oldNotAfter = Date.parse(String(mine[i - 1]!.notAfter));
        if (seen !== undefined) servedMargins.push(oldNotAfter - seen);
      }
    }
    servedMargins.sort((a, b) => a - b);
    const replaced =
      endPebble.match(/ARI: order "[^"]+" is a replacement of "[^"]+"/g)?.length ?? 0;
    const without = lines.filter(
      (l) => l.message === 'the CA refused the order as a replacement; placing it without replaces',
    ).length;
    const inWindow = renewalOrders.filter((l) => l.inAriWindow === true).length;
    const budgetRefusals = (stderr().match(/RATE_BUDGET_EXCEEDED/g) ?? []).length;
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

    console.log(
      `\nfigures:ari: one daemon run, ${s(endAt - t0)} (${names.length} certificates, profile ${PROFILE} = ${args.profileSeconds} s)`,
    );
    console.log(
      `  production certificates issued: ${issued.length} (${names.length} first + ${renewals} renewals); per name: ${[...perCert().values()].join(' ')}`,
    );
    console.log(
      `  renewals: ${renewals} (${inWindow} of ${renewalOrders.length} renewal orders due by the CA's ARI window)`,
    );
    console.log(
      `  orders carrying replaces (Pebble "ARI: order ... is a replacement of ..."): ${replaced}; placed again without replaces: ${without}`,
    );
    console.log(
      `  renewal relative to expiry (old notAfter - renewal ordered): closest to expiry ${s(ordered[0] ?? NaN)}, median ${s(quantile(ordered, 0.5))}, earliest ${s(ordered[ordered.length - 1] ?? NaN)}`,
    );
    console.log(
      `  new certificate first served by nginx, before the old one expired: closest ${s(servedMargins[0] ?? NaN)}, median ${s(quantile(servedMargins, 0.5))}, earliest ${s(servedMargins[servedMargins.length - 1] ?? NaN)} (${servedMargins.length} seen by the probes)`,
    );
    if (steady) {
      const r = renewals - steady.renewals;
      const req = endMetrics.total - steady.requests;
      const ari = endMetrics.renewalInfo - steady.ari;
      const peb = (endPebble.match(/-> calling handler\(\)$/gm)?.length ?? 0) - steady.pebble;
      console.log(
        `  ACME requests per renewal (production CA, steady state ${s(endAt - steady.at)}, ${r} renewals): ` +
          `${(req / r).toFixed(1)} by the sidecar's counter (${req} requests, ${ari} of them renewalInfo GETs = ${(ari / r).toFixed(2)} per renewal, nonce HEADs included); ` +
          `${(peb / r).toFixed(1)} by Pebble's log (${peb} handled)`,
      );
    }
    const allReq = endMetrics.total;
    console.log(
      `  whole run, production CA: ${allReq} requests (${endMetrics.renewalInfo} renewalInfo) for ${issued.length} issuances = ${(allReq / issued.length).toFixed(1)} per issuance`,
    );
    console.log(
      `  TLS probes through nginx: ${probes}; an expired certificate served: ${expired.length}`,
    );
    for (const e of expired.slice(0, 10)) console.log(`    ${e}`);
    console.log(`  rate-limit budget refusals (RATE_BUDGET_EXCEEDED): ${budgetRefusals}`);
    console.log(`  daemon exit after SIGTERM: ${String(exitCode)}`);
    if (inWindow < renewalOrders.length) {
      console.log(
        `  renewal orders not due by the CA's ARI window: ${renewalOrders.length - inWindow}`,
      );
    }
    if (
      expired.length > 0 ||
      budgetRefusals > 0 ||
      exitCode !== 0 ||
      inWindow < renewalOrders.length
    ) {
      code = 1;
    }
    if (args.keep) console.log(`  logs kept in ${env.dir}`);
  } finally {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    await env.stop();
  }
  process.exit(code);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
