#!/usr/bin/env node
/**
 * acme-sidecar run   the daemon: discovers, issues, renews until SIGTERM
 * acme-sidecar once  one pass; exit 0 only if every certificate ends valid
 *                    and in its target phase, otherwise 1 with the reasons
 */
import http from 'node:http';
import { join } from 'node:path';
import type { Config } from './config/schema.js';
import type { RenewTarget } from './control/protocol.js';
import {
  STATUS_ADDRESS_DEFAULT,
  STATUS_ADDRESS_EXPECTED,
  parseStatusAddress,
} from './domain/endpoints.js';
import type { PassResult } from './main.js';

// Everything else is imported by the command that needs it: `healthcheck`
// runs every 30 s in the container and must not load the ACME client, etcd,
// the platforms and the config schema (seconds of CPU on a busy host) to ask
// one URL.

const USAGE = `usage: acme-sidecar <run|once|status|renew|check-config|healthcheck>

  run          run as a daemon: issue, renew and re-issue until SIGTERM
  once         one pass; exit 0 only if every certificate is valid and in its
               target phase (staging, or production with STAGING=false);
               --dry-run: print what it would do, change nothing
  status       the running daemon's certificates as a table; exit 0 only if
               every one is ready
  renew <name> renew one certificate now (\`--all\`: every one), skipping the
               retry backoff but not a wait the CA asked for; exit 0 only if
               each ends ready
  check-config reach the CA, the platform and nginx for every hostname,
               and say in plain words what is wrong; exit 0 if all is well
  healthcheck  exit 0 if the daemon's /healthz answers (for Docker's HEALTHCHECK)

Configuration comes from environment variables; see the README.`;

export function formatPass(result: PassResult): string {
  const lines: string[] = [];
  for (const c of result.certificates) {
    const state = c.ready ? 'ok  ' : 'FAIL';
    lines.push(
      `${state} ${c.name} [${c.domains.join(', ')}] phase=${c.phase}` +
        (c.notAfter ? ` notAfter=${c.notAfter}` : '') +
        ` reason=${c.reason}` +
        // RFC 9773 section 4.2: the CA's page on why it moved the window
        // (printable ASCII only, lifecycle/ari.ts parseRenewalInfo).
        (c.explanationUrl ? ` explanation=${c.explanationUrl}` : '') +
        (c.lastError ? ` error=${c.lastError.code}: ${c.lastError.message}` : ''),
    );
    // A local-state problem is named as one (never as the CA's or platform's).
    for (const p of c.localState ?? []) {
      lines.push(
        `     ${c.name}: ${p.code} ${p.record}` +
          (p.keptAs ? ` kept aside as ${p.keptAs}` : '') +
          (c.recovered
            ? `; ${c.recovered === 'adopted' ? 'adopted back from live/, no order' : 'issued again'}`
            : ''),
      );
    }
  }
  for (const p of result.problems) {
    lines.push(`SKIP ${JSON.stringify(p.value)} (${p.source}): ${p.code}: ${p.message}`);
  }
  if (result.discoveryError) lines.push(`FAIL discovery: ${result.discoveryError}`);
  if (result.certificates.length === 0 && result.problems.length === 0) {
    lines.push('no certificates configured (set DOMAINS)');
  }
  return lines.join('\n');
}

/** The pass succeeded only if everything asked for ended ready. */
export function passOk(result: PassResult): boolean {
  return (
    result.certificates.length > 0 &&
    result.certificates.every((c) => c.ready) &&
    result.problems.length === 0 &&
    !result.discoveryError
  );
}

/**
 * Asks the running daemon's /healthz; with the status server off there is
 * nothing to ask. Only STATUS_ADDRESS is read: the daemon validated the rest
 * of the configuration when it started.
 */
async function healthcheck(env: NodeJS.ProcessEnv): Promise<number> {
  const raw = env.STATUS_ADDRESS ?? STATUS_ADDRESS_DEFAULT;
  const address = parseStatusAddress(raw);
  if (address === undefined) {
    process.stderr.write(
      `acme-sidecar: STATUS_ADDRESS=${JSON.stringify(raw)}: ${STATUS_ADDRESS_EXPECTED}\n`,
    );
    return 2;
  }
  if (address === 'off') return 0;
  const host = ['0.0.0.0', '::', ''].includes(address.host) ? '127.0.0.1' : address.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/healthz`;
  // node:http rather than fetch: loading undici costs more than the request.
  const status = await new Promise<number | Error>((resolve) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
    req.on('error', resolve);
  });
  if (typeof status === 'number' && status >= 200 && status < 300) return 0;
  process.stderr.write(
    `acme-sidecar: ${url}: ${typeof status === 'number' ? `answered ${status}` : status.message}\n`,
  );
  return 1;
}

/** Exit code when the daemon could not be asked (not running, permission, timeout). */
const EXIT_NO_DAEMON = 3;

/** `status` and `renew`: ask the running daemon over its control socket (STATE_DIR/control.sock). */
async function control(
  cmd: 'status' | 'renew',
  args: string[],
  socketPath: string,
): Promise<number> {
  const { ControlClientError, fetchStatus, requestRenew } = await import('./control/client.js');
  const { commandExitCode, formatRenewResults, formatStatusTable } =
    await import('./control/format.js');
  const { systemClock } = await import('./lifecycle/clock.js');
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  let target: RenewTarget | undefined;
  if (cmd === 'renew') {
    const { parseRenewArgs } = await import('./control/protocol.js');
    target = parseRenewArgs(args);
    if (!target) {
      process.stderr.write('usage: acme-sidecar renew <name>|--all\n');
      return 2;
    }
  } else if (args.length > 0) {
    process.stderr.write('usage: acme-sidecar status\n');
    return 2;
  }
  try {
    if (!target) {
      const snapshot = await fetchStatus(socketPath);
      process.stdout.write(`${formatStatusTable(snapshot, systemClock.now(), color)}\n`);
      return commandExitCode('status', snapshot);
    }
    const results = await requestRenew(socketPath, target);
    process.stdout.write(`${formatRenewResults(results, color)}\n`);
    return commandExitCode('renew', results);
  } catch (err) {
    if (!(err instanceof ControlClientError)) throw err;
    // The message says what to do, and is safe for a terminal.
    process.stderr.write(`acme-sidecar: ${err.message}\n`);
    // The daemon answered (unknown name, bad request, ...): the request failed.
    return err.code === 'REQUEST_FAILED' ? 1 : EXIT_NO_DAEMON;
  }
}

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (
    cmd !== 'run' &&
    cmd !== 'once' &&
    cmd !== 'status' &&
    cmd !== 'renew' &&
    cmd !== 'check-config' &&
    cmd !== 'healthcheck'
  ) {
    process.stderr.write(USAGE + '\n');
    return cmd === '--help' || cmd === '-h' || cmd === 'help' ? 0 : 2;
  }
  if (cmd === 'healthcheck') return healthcheck(process.env);
  const { loadConfig } = await import('./config/load.js');
  const { ConfigError, errorCode, errorMessage } = await import('./domain/errors.js');
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`acme-sidecar: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (cmd === 'status' || cmd === 'renew') {
    const { CONTROL_SOCKET_NAME } = await import('./control/protocol.js');
    return control(cmd, argv.slice(1), join(config.stateDir, CONTROL_SOCKET_NAME));
  }
  const { createLogger } = await import('./util/log.js');
  const { buildApp } = await import('./main.js');
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const app = await buildApp(config, { log });
  if (cmd === 'run') {
    try {
      await app.runDaemon();
    } catch (err) {
      // Cluster mode with another key than the cluster's: a startup error.
      if (errorCode(err) === 'STORE_DECRYPT_FAILED') {
        process.stderr.write(`acme-sidecar: ${errorMessage(err)}\n`);
        return 2;
      }
      // A file in the way of the control socket, or another daemon on it: a startup error.
      const { ControlSocketError } = await import('./control/server.js');
      if (!(err instanceof ControlSocketError)) throw err;
      process.stderr.write(`acme-sidecar: control socket: ${err.message}\n`);
      return 2;
    }
    return 0;
  }
  if (cmd === 'check-config') {
    const lines = await app.checkConfig();
    for (const l of lines)
      process.stdout.write(
        `${l.ok ? (l.warn ? 'WARN' : 'ok  ') : 'FAIL'} ${l.what}: ${l.detail}\n`,
      );
    return lines.every((l) => l.ok) ? 0 : 1;
  }
  if (argv.includes('--dry-run')) {
    const planned = await app.plan();
    for (const l of planned.lines) {
      process.stdout.write(`${l.name} [${l.domains.join(', ')}]: would ${l.would}\n`);
    }
    for (const p of planned.problems) {
      process.stdout.write(
        `SKIP ${JSON.stringify(p.value)} (${p.source}): ${p.code}: ${p.message}\n`,
      );
    }
    if (planned.discoveryError) process.stdout.write(`FAIL discovery: ${planned.discoveryError}\n`);
    process.stdout.write('dry run: nothing was changed\n');
    return planned.discoveryError ? 1 : 0;
  }
  const result = await app.pass();
  process.stdout.write(formatPass(result) + '\n');
  return passOk(result) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: an abandoned ACME poll or a keep-alive socket must not
  // hold a finished process open.
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `acme-sidecar: fatal: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  },
);
