// `npm run demo`: the whole product on loopback, with no domain and no
// platform. Starts a local DNS helper, two Pebble CAs ("staging",
// "production") and nginx (the same startup code the e2e tests use), then
// runs the real sidecar against them: self-signed placeholder -> staging ->
// production, served by nginx. Ctrl-C stops everything it started.
//
//   npm run demo                 run until Ctrl-C
//   npm run demo -- --once       exit after the first full pass (0 = all issued)
//   npm run demo -- --keep       keep the temp dir (certificates, logs) on exit
//   npm run demo -- --install    as root: apt-get install what is missing first
//                                (Debian's Pebble 2.4 if Pebble 2.9 is not
//                                installed: run devenv/install-pebble.sh for 2.9)
//   PLATFORM=rancher npm run demo   also a local fake Rancher (Cattle) API seeded
//                                with labelled services: label -> certificate -> platform
//
// With BIND 9 installed (Debian's bind9), the demo also runs it on loopback
// as the DNS the CAs resolve through and issues a wildcard certificate
// (*.wild.test + wild.test) by DNS-01 with RFC 2136 updates; without it, it
// says it skipped that certificate.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load.js';
import { buildApp } from '../src/main.js';
import { createLogger } from '../src/util/log.js';
import { DENT_LABEL, DOMAINS_LABEL } from '../src/platform/rancher/rancher-platform.js';
import { NAMED_BIN, startBind, type BindInstance } from './bind.js';
import { startFakeCattle, type FakeCattle } from './fake-cattle.js';
import { freePort } from './proc.js';
import {
  checkPrereqs,
  PEBBLE_INSTALL_SCRIPT,
  PEBBLE_VERSION,
  sidecarEnvFor,
  startDevEnv,
  tlsServedCert,
  type DevEnv,
} from './index.js';

const DEMO_DOMAINS = 'www.demo.test, api.demo.test, shop=shop.demo.test+cdn.demo.test';
/** Issued by DNS-01 when BIND 9 is installed; its own subtree, so HTTP-01 names stay on `*.test`. */
const WILDCARD_DOMAINS = 'wild=*.wild.test+wild.test';
const RANCHER = process.env.PLATFORM === 'rancher';

const { values: flags } = parseArgs({
  options: {
    once: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    install: { type: 'boolean', default: false },
  },
});

function ensurePrereqs(): void {
  // Pebble 2.9 (devenv/install-pebble.sh) if installed, else Debian's 2.4:
  // the demo needs neither ARI nor profiles.
  let pre = checkPrereqs({ allowDebianPebble: true });
  if (pre.ok) return;
  if (flags.install && process.getuid?.() === 0) {
    const pkgs = /apt-get install -y (.*)$/.exec(pre.message)?.[1]?.split(' ') ?? [];
    console.log(`installing ${pkgs.join(' ')} with apt-get...`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit' });
    pre = checkPrereqs({ allowDebianPebble: true });
    if (pre.ok) return;
  }
  console.error(
    pre.message + (flags.install ? '' : '\n(or run: npm run demo -- --install as root)'),
  );
  process.exit(1);
}

async function main(): Promise<number> {
  ensurePrereqs();
  // The wildcard goes with the DOMAINS demo; the Rancher one shows labels.
  const bindDir =
    !RANCHER && existsSync(NAMED_BIN)
      ? await mkdtemp(path.join(os.tmpdir(), 'acme-demo-bind-'))
      : undefined;
  if (!RANCHER && !bindDir) {
    console.log(
      `demo: ${NAMED_BIN} is not installed: skipping the wildcard certificate (DNS-01); apt-get install bind9 bind9-dnsutils to see it`,
    );
  }
  let bind: BindInstance | undefined;
  let env: DevEnv | undefined;
  let cattle: FakeCattle | undefined;
  try {
    bind = bindDir ? await startBind({ dir: bindDir, acmeNames: ['wild.test'] }) : undefined;
    // As startDevEnv does for its processes: a demo that exits before the
    // finally below has run (Ctrl-C reaches it twice: from the terminal's
    // process group and relayed by tsx) leaves neither named nor its files.
    const named = bind?.process;
    if (named && bindDir) {
      process.once('exit', () => {
        named.killNow();
        rmSync(bindDir, { recursive: true, force: true });
      });
    }
    env = await startDevEnv({
      keepTempDir: flags.keep,
      allowDebianPebble: true,
      ...(bind && { dnsAddress: bind.address }),
    });
    if (env.pebbleBinaries.source === 'debian') {
      console.log(
        `using Debian's Pebble 2.4 (${env.pebbleBinaries.pebble}): run ${PEBBLE_INSTALL_SCRIPT} for Pebble ${PEBBLE_VERSION}`,
      );
    }
    cattle = RANCHER ? await startFakeCattle() : undefined;
    return await runDemo(env, cattle, bind);
  } finally {
    await cattle?.close();
    await Promise.all([env?.stop(), bind?.stop()]);
    // Only BIND's config and journal: --keep keeps the certificates and logs.
    if (bindDir) await rm(bindDir, { recursive: true, force: true });
  }
}

/** A few services as a Rancher user would label them. */
function seed(cattle: FakeCattle): void {
  cattle.addService({ name: 'web', labels: { [DENT_LABEL]: 'www.demo.test,api.demo.test' } });
  cattle.addService({
    name: 'shop',
    labels: { [DOMAINS_LABEL]: 'shop=shop.demo.test+cdn.demo.test' },
  });
  cattle.addService({ name: 'lb', kind: 'loadBalancerService' });
}

async function runDemo(
  env: DevEnv,
  cattle: FakeCattle | undefined,
  bind: BindInstance | undefined,
): Promise<number> {
  if (cattle) seed(cattle);
  const statusPort = await freePort();
  // The sidecar is configured exactly as a user would: environment variables.
  const config = loadConfig(
    sidecarEnvFor(env, {
      DOMAINS: cattle ? '' : bind ? `${DEMO_DOMAINS}, ${WILDCARD_DOMAINS}` : DEMO_DOMAINS,
      STAGING: 'false',
      LOOP_TIME: '30',
      LOG_FORMAT: 'text',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      STATUS_ADDRESS: `127.0.0.1:${statusPort}`,
      ...(bind && {
        DNS_PROVIDER: 'rfc2136',
        RFC2136_NAMESERVER: bind.address,
        RFC2136_TSIG_KEY: bind.keyName,
        RFC2136_TSIG_SECRET: bind.secret,
        DNS_RESOLVERS: bind.address,
        DNS_POLLING_INTERVAL: '0.2',
      }),
      ...(cattle && {
        PLATFORM: 'rancher',
        CATTLE_URL: cattle.url,
        CATTLE_ACCESS_KEY: cattle.accessKey,
        CATTLE_SECRET_KEY: cattle.secretKey,
      }),
    }),
  );
  const log = createLogger({ level: config.logLevel, format: 'text' });
  const app = await buildApp(config, { log });
  console.log(
    `demo: local CAs and nginx are up on 127.0.0.1${bind ? `, and BIND 9 on ${bind.address} for the wildcard (DNS-01)` : ''}; running the sidecar...\n`,
  );

  const result = await app.pass();
  const names = result.certificates.map((c) => c.name);
  const prodRoot = await env.production.getRootPem();
  await writeFile(path.join(env.dir, 'production-root.pem'), prodRoot);
  await env.nginx.reload({
    tlsServers: result.certificates.map((c) => ({ certName: c.name, serverNames: c.domains })),
  });

  console.log('\ndemo: first pass done');
  for (const c of result.certificates) {
    // A wildcard is asked for by a name it covers.
    const sni = (c.domains[0] ?? c.name).replace(/^\*\./, 'www.');
    const served = await tlsServedCert(env.ports.https, sni);
    console.log(
      `  ${c.ready ? 'ok  ' : 'FAIL'} ${c.name.padEnd(14)} ${c.phase.padEnd(11)} ` +
        `${path.join(env.certDir, 'live', c.name)}/  nginx serves serial ${served.serialNumber}` +
        (c.lastError ? `  error: ${c.lastError.message}` : ''),
    );
  }
  if (cattle) {
    console.log(`\n  fake Rancher API ${cattle.url} (labelled services: web, shop) now holds:`);
    for (const c of cattle.certificates().filter((x) => !x.removed)) {
      console.log(
        `    certificate ${String(c.name).padEnd(14)} id=${c.id} serial=${String(c.serialNumber)} expires ${String(c.expiresAt)}`,
      );
    }
  }
  console.log(`
  production CA root      ${path.join(env.dir, 'production-root.pem')}
  try it                  curl --cacert ${path.join(env.dir, 'production-root.pem')} --resolve www.demo.test:${env.ports.https}:127.0.0.1 https://www.demo.test:${env.ports.https}/
  logs                    ${env.dir}/*.log
  processes               ${[...env.pids(), ...(bind ? [bind.process.pid] : [])].join(' ')}`);
  const ok =
    result.certificates.length === names.length && result.certificates.every((c) => c.ready);
  if (flags.once) return ok ? 0 : 1;

  console.log(
    `\ndemo: the sidecar keeps running (renewal checks, LOOP_TIME=30s).` +
      `\n  status page             http://127.0.0.1:${statusPort}/  (also /status, /metrics)` +
      `\nCtrl-C stops everything.`,
  );
  // Ctrl-C may come while the daemon is still starting (before its own
  // handler), and reaches this process twice (the terminal's process group,
  // and relayed by tsx). Without a listener of ours, either would end the
  // process before main() stops the CAs, nginx and BIND.
  const stop = () => app.stop();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await app.runDaemon();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
