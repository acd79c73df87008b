// One Pebble ACME CA (Debian package `pebble`, 2.4.0) on loopback.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { httpsGet } from './http.js';
import { pidListensOn, spawnManaged, waitUntilReady, type ManagedProcess } from './proc.js';
import type { ThrowawayCa } from './tlsca.js';

export const PEBBLE_BIN = '/usr/bin/pebble';

export interface PebbleOptions {
  /** Label used for the log/config file names, e.g. "staging". */
  name: string;
  /** Directory for the config and log file. */
  dir: string;
  /** ACME API port (directory at `https://127.0.0.1:<listenPort>/dir`). */
  listenPort: number;
  managementPort: number;
  /** Port Pebble's validator connects to for HTTP-01: nginx's HTTP port. */
  httpPort: number;
  /** Port Pebble's validator connects to for TLS-ALPN-01 (nothing listens by default). */
  tlsPort: number;
  /** `127.0.0.1:<port>` of pebble-challtestsrv's DNS. */
  dnsAddress: string;
  /** Certificate for Pebble's own HTTPS listener. */
  listenerCa: ThrowawayCa;
  /** PEBBLE_VA_NOSLEEP: skip Pebble's random 0-15 s validation delay. Default true. */
  noSleep?: boolean;
  /** PEBBLE_WFE_NONCEREJECT: % of good nonces rejected as badNonce. Default 0 (Pebble's own: 5). */
  nonceRejectPercent?: number;
  /** PEBBLE_AUTHZREUSE: % chance a valid authorization is reused. Default: Pebble's (50). */
  authzReusePercent?: number;
  /**
   * Lifetime of issued certificates in seconds (config key
   * `certificateValidityPeriod`, honoured by Pebble 2.4.0). Default: Pebble's
   * (5 years). Short values make renewal tests possible.
   */
  certificateValidityPeriod?: number;
  /** External Account Binding: require it, with these kid -> base64url HMAC keys. */
  externalAccountMACKeys?: Record<string, string>;
}

export interface PebbleInstance {
  name: string;
  process: ManagedProcess;
  /** `https://127.0.0.1:<port>/dir` */
  directoryUrl: string;
  /** `https://127.0.0.1:<mgmt>` (roots, intermediates, cert status). */
  managementUrl: string;
  listenPort: number;
  managementPort: number;
  configPath: string;
  /** PEM of the current issuing root (new at every Pebble start). */
  getRootPem(): Promise<string>;
  /** PEM of the current intermediate. */
  getIntermediatePem(): Promise<string>;
  stop(): Promise<void>;
}

export async function startPebble(opts: PebbleOptions): Promise<PebbleInstance> {
  const configPath = path.join(opts.dir, `pebble-${opts.name}.json`);
  const eab = opts.externalAccountMACKeys;
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${opts.listenPort}`,
      managementListenAddress: `127.0.0.1:${opts.managementPort}`,
      certificate: opts.listenerCa.certPath,
      privateKey: opts.listenerCa.keyPath,
      httpPort: opts.httpPort,
      tlsPort: opts.tlsPort,
      // No OCSP responder exists here; an empty URL keeps it out of certificates.
      ocspResponderURL: '',
      externalAccountBindingRequired: eab !== undefined,
      ...(eab ? { externalAccountMACKeys: eab } : {}),
      ...(opts.certificateValidityPeriod !== undefined
        ? { certificateValidityPeriod: opts.certificateValidityPeriod }
        : {}),
    },
  };
  await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');

  // Start from the parent environment minus every PEBBLE_* variable, so a
  // stray PEBBLE_VA_ALWAYS_VALID (validation skipped) can never leak in.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PEBBLE_')) env[k] = v;
  if (opts.noSleep ?? true) env.PEBBLE_VA_NOSLEEP = '1';
  env.PEBBLE_WFE_NONCEREJECT = String(opts.nonceRejectPercent ?? 0);
  if (opts.authzReusePercent !== undefined) env.PEBBLE_AUTHZREUSE = String(opts.authzReusePercent);

  const proc = spawnManaged(
    `pebble (${opts.name})`,
    PEBBLE_BIN,
    // Without -dnsserver Pebble uses the system resolver, which is not on loopback.
    ['-config', configPath, '-dnsserver', opts.dnsAddress],
    { logPath: path.join(opts.dir, `pebble-${opts.name}.log`), env },
  );

  const directoryUrl = `https://127.0.0.1:${opts.listenPort}/dir`;
  const managementUrl = `https://127.0.0.1:${opts.managementPort}`;
  const caPem = opts.listenerCa.caPem;
  const fetchPem = async (p: string): Promise<string> => {
    const res = await httpsGet(`${managementUrl}${p}`, caPem);
    if (res.status !== 200) throw new Error(`GET ${managementUrl}${p}: HTTP ${res.status}`);
    return res.body;
  };

  // Ready when this process holds both ports (not merely "something answers
  // there") and the ACME directory and management API respond.
  await waitUntilReady(
    proc,
    async () => {
      if (!pidListensOn(proc.pid, opts.listenPort)) return false;
      if (!pidListensOn(proc.pid, opts.managementPort)) return false;
      const dir = await httpsGet(directoryUrl, caPem);
      if (dir.status !== 200 || !dir.body.includes('newOrder')) return false;
      await fetchPem('/roots/0');
      return true;
    },
    `its directory at ${directoryUrl}`,
  );

  return {
    name: opts.name,
    process: proc,
    directoryUrl,
    managementUrl,
    listenPort: opts.listenPort,
    managementPort: opts.managementPort,
    configPath,
    getRootPem: () => fetchPem('/roots/0'),
    getIntermediatePem: () => fetchPem('/intermediates/0'),
    stop: () => proc.stop(),
  };
}
