// One Pebble ACME CA (2.9.0, built from the Go module proxy by
// devenv/install-pebble.sh) on loopback.
import { accessSync, constants } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { httpsGet } from './http.js';
import { pidListensOn, spawnManaged, waitUntilReady, type ManagedProcess } from './proc.js';
import type { ThrowawayCa } from './tlsca.js';

/** The Pebble the tests and the devenv run: ARI (renewalInfo) and profiles. */
export const PEBBLE_VERSION = 'v2.9.0';
/**
 * The first Pebble with dns-persist-01 (draft-ietf-acme-dns-persist; 2.9.0
 * has no such challenge): only test/e2e/dns-persist.test.ts runs it.
 * `PEBBLE_VERSION=v2.10.3 devenv/install-pebble.sh` builds it.
 */
export const PEBBLE_PERSIST_VERSION = 'v2.10.3';
/** Builds PEBBLE_VERSION's pebble and pebble-challtestsrv into pebbleGoBinDir(). */
export const PEBBLE_INSTALL_SCRIPT = 'devenv/install-pebble.sh';
/**
 * Debian's Pebble 2.4.0 (package `pebble`): no ARI, no profiles. Only
 * `npm run demo` falls back to it, on a machine without Go; tests never do.
 */
export const DEBIAN_PEBBLE_BIN = '/usr/bin/pebble';
export const DEBIAN_CHALLTESTSRV_BIN = '/usr/bin/pebble-challtestsrv';
/** Pebble 2.4.0's default lifetime (5 years), kept as the `default` profile's. */
export const DEFAULT_VALIDITY_SECONDS = 157766400;

/**
 * Where devenv/install-pebble.sh puts the binaries: `$PEBBLE_GOBIN`, else
 * `${XDG_CACHE_HOME:-$HOME/.cache}/acme-sidecar/go/pebble-v2.9.0/bin` (the
 * script computes the same path).
 */
export function pebbleGoBinDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PEBBLE_GOBIN) return env.PEBBLE_GOBIN;
  const cache = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(cache, 'acme-sidecar', 'go', `pebble-${PEBBLE_VERSION}`, 'bin');
}

/**
 * Pebble PEBBLE_PERSIST_VERSION's binaries: PEBBLE_PERSIST_BIN, else where
 * install-pebble.sh puts that version (`pebble-v2.10.3/bin` in the cache).
 */
export function persistPebbleBinaries(env: NodeJS.ProcessEnv = process.env): PebbleBinaries {
  const cache = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  const dir = path.join(cache, 'acme-sidecar', 'go', `pebble-${PEBBLE_PERSIST_VERSION}`, 'bin');
  return {
    pebble: env.PEBBLE_PERSIST_BIN || path.join(dir, 'pebble'),
    challtestsrv: path.join(dir, 'pebble-challtestsrv'),
    source: 'go',
  };
}

export interface PebbleBinaries {
  pebble: string;
  challtestsrv: string;
  /** `go`: Pebble 2.9 from install-pebble.sh (or PEBBLE_BIN); `debian`: the demo's 2.4 fallback. */
  source: 'go' | 'debian';
}

/** The Pebble 2.9 binaries: PEBBLE_BIN / PEBBLE_CHALLTESTSRV_BIN, else pebbleGoBinDir(). */
export function goPebbleBinaries(env: NodeJS.ProcessEnv = process.env): PebbleBinaries {
  const dir = pebbleGoBinDir(env);
  return {
    pebble: env.PEBBLE_BIN || path.join(dir, 'pebble'),
    challtestsrv: env.PEBBLE_CHALLTESTSRV_BIN || path.join(dir, 'pebble-challtestsrv'),
    source: 'go',
  };
}

export const DEBIAN_PEBBLE_BINARIES: PebbleBinaries = {
  pebble: DEBIAN_PEBBLE_BIN,
  challtestsrv: DEBIAN_CHALLTESTSRV_BIN,
  source: 'debian',
};

export function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The binaries to run: Pebble 2.9 when installed; Debian's 2.4 only when
 * `allowDebian` (the demo) and 2.9 is missing; otherwise undefined.
 */
export function resolvePebbleBinaries(allowDebian = false): PebbleBinaries | undefined {
  const installed = (b: PebbleBinaries): boolean =>
    isExecutable(b.pebble) && isExecutable(b.challtestsrv);
  const go = goPebbleBinaries();
  if (installed(go)) return go;
  if (allowDebian && installed(DEBIAN_PEBBLE_BINARIES)) return DEBIAN_PEBBLE_BINARIES;
  return undefined;
}

/** One entry of Pebble 2.9's `profiles` config (listed in the directory's `meta.profiles`). */
export interface PebbleProfile {
  description: string;
  /** Certificate lifetime in seconds. */
  validityPeriod: number;
  /** Put the first name in the subject CN (Let's Encrypt's `classic` does). */
  promoteCommonName?: boolean;
}

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
   * Lifetime of issued certificates in seconds: the validity of the single
   * profile `default` (Pebble 2.9 ignores its old `certificateValidityPeriod`
   * key; written as well for Debian's 2.4 fallback). Default 5 years, Pebble
   * 2.4's. Short values make renewal tests possible. Not with `profiles`.
   */
  certificateValidityPeriod?: number;
  /**
   * Pebble 2.9's profiles, replacing the single `default` one. An order that
   * names no profile gets a RANDOM one of these: with more than one, every
   * order whose lifetime matters must name its profile.
   */
  profiles?: Record<string, PebbleProfile>;
  /** The binaries (resolvePebbleBinaries()). Default: Pebble 2.9's (goPebbleBinaries()). */
  binaries?: PebbleBinaries;
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
  /** Pebble's output: one `<METHOD> <path> -> calling handler()` line per ACME request. */
  logPath: string;
  /** PEM of the current issuing root (new at every Pebble start). */
  getRootPem(): Promise<string>;
  /** PEM of the current intermediate. */
  getIntermediatePem(): Promise<string>;
  stop(): Promise<void>;
}

/** What a test or the devenv says when Pebble 2.9 is not installed. */
export function missingPebbleMessage(bin: string): string {
  return (
    `Pebble ${PEBBLE_VERSION} is not installed (no ${bin}). ` +
    `Run ${PEBBLE_INSTALL_SCRIPT} (needs Go >= 1.24; .ci/run does it), ` +
    `or point PEBBLE_BIN and PEBBLE_CHALLTESTSRV_BIN at Pebble ${PEBBLE_VERSION}'s binaries.`
  );
}

export async function startPebble(opts: PebbleOptions): Promise<PebbleInstance> {
  const configPath = path.join(opts.dir, `pebble-${opts.name}.json`);
  const eab = opts.externalAccountMACKeys;
  const binaries = opts.binaries ?? goPebbleBinaries();
  if (!isExecutable(binaries.pebble)) throw new Error(missingPebbleMessage(binaries.pebble));
  if (opts.profiles !== undefined && opts.certificateValidityPeriod !== undefined) {
    throw new Error('startPebble: give profiles or certificateValidityPeriod, not both');
  }
  const validity = opts.certificateValidityPeriod ?? DEFAULT_VALIDITY_SECONDS;
  // One profile unless a test asks for more: an order without a profile gets
  // a random one of those configured, and today's orders name none.
  const profiles: Record<string, PebbleProfile> = opts.profiles ?? {
    default: {
      description: `Every certificate: ${validity} s`,
      validityPeriod: validity,
      // Like Let's Encrypt's classic profile: the first name in the subject CN.
      promoteCommonName: true,
    },
  };
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
      profiles,
      // Read only by Debian's Pebble 2.4 (the demo's fallback); 2.9 ignores it.
      ...(binaries.source === 'debian' ? { certificateValidityPeriod: validity } : {}),
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

  const logPath = path.join(opts.dir, `pebble-${opts.name}.log`);
  const proc = spawnManaged(
    `pebble (${opts.name})`,
    binaries.pebble,
    // Without -dnsserver Pebble uses the system resolver, which is not on loopback.
    ['-config', configPath, '-dnsserver', opts.dnsAddress],
    { logPath, env },
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
    logPath,
    configPath,
    getRootPem: () => fetchPem('/roots/0'),
    getIntermediatePem: () => fetchPem('/intermediates/0'),
    stop: () => proc.stop(),
  };
}
