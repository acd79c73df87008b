// startDevEnv(): the whole local ACME environment on 127.0.0.1 —
// DNS (pebble-challtestsrv), two Pebble 2.9 CAs ("staging", "production") and
// nginx serving the webroot — for the e2e tests and `npm run demo`.
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startChallTestSrv, type ChallTestSrv } from './challtestsrv.js';
import { startNginx, type NginxInstance, type TlsServerSpec } from './nginx.js';
import {
  startPebble,
  type PebbleBinaries,
  type PebbleInstance,
  type PebbleOptions,
} from './pebble.js';
import { assertPrereqs } from './prereqs.js';
import { childPids, freePorts, type ManagedProcess } from './proc.js';
import { createThrowawayCa, writeSelfSignedCert, type ThrowawayCa } from './tlsca.js';

export { checkPrereqs, assertPrereqs } from './prereqs.js';
export type { PrereqOptions, PrereqResult } from './prereqs.js';
export { PEBBLE_INSTALL_SCRIPT, PEBBLE_VERSION } from './pebble.js';
export type { PebbleBinaries, PebbleProfile } from './pebble.js';
export { httpGet, httpsGet } from './http.js';
export type { HttpResponse } from './http.js';
export { renderTemplate, tlsServedCert } from './nginx.js';
export type { NginxInstance, NginxRenderOptions, ServedCert, TlsServerSpec } from './nginx.js';
export type { PebbleInstance } from './pebble.js';
export type { ChallTestSrv } from './challtestsrv.js';
export type { ThrowawayCa } from './tlsca.js';
export { writeCertFiles, writeSelfSignedCert } from './tlsca.js';
export { pidAlive } from './proc.js';

/** Per-Pebble knobs (both instances get the same unless overridden). */
export type PebbleTuning = Pick<
  PebbleOptions,
  | 'noSleep'
  | 'nonceRejectPercent'
  | 'authzReusePercent'
  | 'certificateValidityPeriod'
  | 'profiles'
  | 'externalAccountMACKeys'
  | 'binaries'
>;

export interface DevEnvOptions {
  /** Settings for both Pebbles. Defaults: PEBBLE_VA_NOSLEEP=1, PEBBLE_WFE_NONCEREJECT=0. */
  pebble?: PebbleTuning;
  /** Overrides for the staging Pebble only. */
  staging?: PebbleTuning;
  /** Overrides for the production Pebble only. */
  production?: PebbleTuning;
  /**
   * TLS servers for nginx. nginx will not start if a certificate file is
   * missing: put them in `certDir` first, or set `placeholderCerts`.
   */
  tlsServers?: readonly TlsServerSpec[];
  /** Write a self-signed placeholder for each tlsServers certificate that is missing. Default false. */
  placeholderCerts?: boolean;
  /** Use this certificate directory (e.g. the sidecar's) instead of one in the temp dir; never removed. */
  certDir?: string;
  /**
   * Use this webroot instead of one in the temp dir; never removed. nginx
   * workers run as nobody: it must be world-traversable.
   */
  webroot?: string;
  /** Start nginx with only the HTTP challenge server (default: true if no tlsServers). */
  nginxHttpOnly?: boolean;
  /** nginx also serves HTTP-01 on [::1] (for IPv6 `ip` identifiers). Default false. */
  nginxIpv6?: boolean;
  /**
   * `host:port` of the DNS server the Pebbles ask instead of challtestsrv
   * (a BIND from devenv/bind.ts, for DNS-01 against real records).
   */
  dnsAddress?: string;
  /** Parent of the env's temp dir. Default: os.tmpdir(). */
  baseDir?: string;
  /** Keep the temp dir (logs, configs) after stop(). Default false. */
  keepTempDir?: boolean;
  /**
   * Run Debian's Pebble 2.4 when Pebble 2.9 is not installed (`npm run demo`
   * on a machine without Go). Default false: tests fail instead, naming
   * devenv/install-pebble.sh.
   */
  allowDebianPebble?: boolean;
}

export interface DevEnvPorts {
  /** nginx HTTP = Pebble's httpPort (where HTTP-01 tokens are fetched). */
  http: number;
  https: number;
  /** Pebble's tlsPort for TLS-ALPN-01 (nothing listens by default). */
  tlsAlpn: number;
  dns: number;
  challtestsrvManagement: number;
  stagingAcme: number;
  stagingManagement: number;
  productionAcme: number;
  productionManagement: number;
}

export interface DevEnv {
  /** Temp dir holding everything (logs: *.log). */
  dir: string;
  /** Where nginx serves /.well-known/acme-challenge/ from (world-readable). */
  webroot: string;
  /** certbot-style `<certDir>/live/<name>/{fullchain,privkey}.pem`, read by nginx. */
  certDir: string;
  ports: DevEnvPorts;
  /** CA that signed Pebble's listener certificate: trust it to talk to Pebble. */
  listenerCa: ThrowawayCa;
  caPemPath: string;
  caPem: string;
  dns: ChallTestSrv;
  staging: PebbleInstance;
  production: PebbleInstance;
  nginx: NginxInstance;
  /** The Pebble binaries running (`source: 'debian'` only for the demo's fallback). */
  pebbleBinaries: PebbleBinaries;
  /** Pids of every process started (incl. nginx workers at call time). */
  pids(): number[];
  /** Stop everything (SIGTERM, SIGKILL after 5 s), wait for exit, remove the temp dir. */
  stop(): Promise<void>;
}

export async function startDevEnv(opts: DevEnvOptions = {}): Promise<DevEnv> {
  const binaries = assertPrereqs({ allowDebianPebble: opts.allowDebianPebble ?? false });
  const dir = await mkdtemp(path.join(opts.baseDir ?? os.tmpdir(), 'acme-devenv-'));
  // mkdtemp makes 0700; nginx workers run as nobody and must traverse down
  // to the webroot.
  await chmod(dir, 0o755);
  const webroot = opts.webroot ?? path.join(dir, 'webroot');
  const certDir = opts.certDir ?? path.join(dir, 'certs');
  await mkdir(path.join(webroot, '.well-known', 'acme-challenge'), {
    recursive: true,
    mode: 0o755,
  });
  await mkdir(certDir, { recursive: true, mode: 0o755 });

  const started: ManagedProcess[] = [];
  // Last resort if the test runner exits without stop(): children run in
  // their own process groups and would otherwise outlive us.
  const onExit = (): void => started.forEach((p) => p.killNow());
  process.once('exit', onExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(started.map((p) => p.stop()));
    process.removeListener('exit', onExit);
    if (!opts.keepTempDir) await rm(dir, { recursive: true, force: true });
  };

  try {
    const [http, https, tlsAlpn, dnsPort, dnsMgmt, sAcme, sMgmt, pAcme, pMgmt] = (await freePorts(
      9,
    )) as [number, number, number, number, number, number, number, number, number];
    const ports: DevEnvPorts = {
      http,
      https,
      tlsAlpn,
      dns: dnsPort,
      challtestsrvManagement: dnsMgmt,
      stagingAcme: sAcme,
      stagingManagement: sMgmt,
      productionAcme: pAcme,
      productionManagement: pMgmt,
    };
    const listenerCa = await createThrowawayCa(path.join(dir, 'listener-ca'));

    const dns = await startChallTestSrv({ dnsPort, managementPort: dnsMgmt, dir, binaries });
    started.push(dns.process);

    const pebbleCommon = {
      dir,
      httpPort: http,
      tlsPort: tlsAlpn,
      dnsAddress: opts.dnsAddress ?? dns.dnsAddress,
      listenerCa,
      binaries,
    };
    // Started one after the other so a failure names the instance; each
    // takes well under a second.
    const staging = await startPebble({
      ...pebbleCommon,
      ...opts.pebble,
      ...opts.staging,
      name: 'staging',
      listenPort: sAcme,
      managementPort: sMgmt,
    });
    started.push(staging.process);
    const production = await startPebble({
      ...pebbleCommon,
      ...opts.pebble,
      ...opts.production,
      name: 'production',
      listenPort: pAcme,
      managementPort: pMgmt,
    });
    started.push(production.process);

    const nginxDir = path.join(dir, 'nginx');
    await mkdir(nginxDir, { recursive: true });
    const tlsServers = opts.tlsServers ?? [];
    if (opts.placeholderCerts) {
      for (const t of tlsServers) {
        if (!existsSync(path.join(certDir, 'live', t.certName, 'fullchain.pem'))) {
          await writeSelfSignedCert(certDir, t.certName, t.serverNames);
        }
      }
    }
    const nginx = await startNginx({
      dir: nginxDir,
      httpPort: http,
      httpsPort: https,
      webroot,
      certDir,
      tlsServers,
      httpOnly: opts.nginxHttpOnly ?? tlsServers.length === 0,
      listenIpv6: opts.nginxIpv6 ?? false,
    });
    started.push(nginx.process);

    return {
      dir,
      webroot,
      certDir,
      ports,
      listenerCa,
      caPemPath: listenerCa.caPemPath,
      caPem: listenerCa.caPem,
      dns,
      staging,
      production,
      nginx,
      pebbleBinaries: binaries,
      pids: () => [
        ...started.map((p) => p.pid),
        ...(nginx.process.isRunning() ? childPids(nginx.process.pid) : []),
      ],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The sidecar's environment variables for this devenv: its CAs, webroot,
 * certificate directory and nginx. Used by the e2e tests and the demo.
 */
export function sidecarEnvFor(
  env: DevEnv,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    STATE_DIR: env.certDir,
    WEBROOT: env.webroot,
    ACME_STAGING_DIRECTORY_URL: env.staging.directoryUrl,
    ACME_PRODUCTION_DIRECTORY_URL: env.production.directoryUrl,
    ACME_CA_BUNDLE: env.caPemPath,
    SELF_CHECK_ADDRESS: `127.0.0.1:${env.ports.http}`,
    KEY_TYPE: 'ecdsa-p256',
    // Never the default 127.0.0.1:8080 here (one port for every test): tests pass a loopback port when they want it.
    STATUS_ADDRESS: 'off',
    ...extra,
  };
}
