/**
 * One sidecar pass, run by scripts/bench.ts in a child process so its RSS
 * and CPU time are its own. Configuration comes from the environment, like
 * the real sidecar; logs (warn and worse) go to stderr. Prints one JSON line
 * to stdout and exits.
 */
import { acmeRequestCounts, onAcmeRequest, totalAcmeRequests } from '../src/acme/http.js';
import { loadConfig } from '../src/config/load.js';
import { buildApp } from '../src/main.js';
import { createLogger } from '../src/util/log.js';

export interface PassReport {
  wallMs: number;
  ready: number;
  total: number;
  notReady: { name: string; reason: string; error?: string }[];
  problems: number;
  discoveryError?: string;
  acmeRequests: number;
  acmeByStep: Record<string, number>;
  cpuUserMs: number;
  cpuSystemMs: number;
  maxRssMB: number;
  /** Process CPU (user + system) inside the pass itself, start-up excluded. */
  passCpuMs: number;
  /** From process start (Node's time origin) to the first newOrder answer; tsx start-up included. */
  firstOrderMs?: number;
}

async function main(): Promise<void> {
  let firstOrderMs: number | undefined;
  onAcmeRequest((e) => {
    if (e.step === 'newOrder' && firstOrderMs === undefined) firstOrderMs = performance.now();
  });
  const config = loadConfig(process.env);
  const app = await buildApp(config, { log: createLogger({ level: 'warn', format: 'json' }) });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const result = await app.pass();
  const wallMs = performance.now() - t0;
  const passCpu = process.cpuUsage(cpu0);
  const cpu = process.cpuUsage();
  const report: PassReport = {
    wallMs,
    ready: result.certificates.filter((c) => c.ready).length,
    total: result.certificates.length,
    notReady: result.certificates
      .filter((c) => !c.ready)
      .slice(0, 5)
      .map((c) => ({
        name: c.name,
        reason: c.reason,
        ...(c.lastError && { error: `${c.lastError.code}: ${c.lastError.message}` }),
      })),
    problems: result.problems.length,
    ...(result.discoveryError && { discoveryError: result.discoveryError }),
    acmeRequests: totalAcmeRequests(),
    acmeByStep: Object.fromEntries(acmeRequestCounts),
    passCpuMs: (passCpu.user + passCpu.system) / 1000,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    // maxRSS is in kilobytes.
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    ...(firstOrderMs !== undefined && { firstOrderMs }),
  };
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-pass failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
