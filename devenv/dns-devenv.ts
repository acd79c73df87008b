// The DNS lab of the DNS-01 and dns-persist-01 tests: a BIND 9 from
// ./bind.ts holding the zone, and the devenv's two Pebbles resolving every
// name through it (-dnsserver), so each CA validates the records BIND really
// serves. One place for the wiring and for the sidecar variables that point
// at that BIND.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startBind, type BindInstance, type BindOptions } from './bind.js';
import { startDevEnv, type DevEnv, type DevEnvOptions } from './index.js';

export interface DnsDevEnvOptions {
  /** BIND's zone and grants (its directory is made in the lab's temp dir). */
  bind: Omit<BindOptions, 'dir'>;
  /** The rest of the devenv; its Pebbles always ask this BIND. */
  devEnv?: Omit<DevEnvOptions, 'dnsAddress'>;
  /** Prefix of the lab's temp dir in os.tmpdir(). Default `dns-devenv-`. */
  tmpPrefix?: string;
}

export interface DnsDevEnv {
  /** A temp dir of the lab's own (BIND's files are in `<dir>/bind`), removed by stop(). */
  dir: string;
  bind: BindInstance;
  env: DevEnv;
  /** The sidecar's variables for reading the records in BIND (check-config, propagation). */
  resolverEnv(): Record<string, string>;
  /** resolverEnv() plus DNS-01 by RFC 2136 updates to BIND, signed with its TSIG key. */
  rfc2136Env(): Record<string, string>;
  /** Stops the devenv and BIND and removes `dir`. */
  stop(): Promise<void>;
}

/** Starts BIND, then the devenv with both Pebbles' -dnsserver pointed at it. */
export async function startDnsDevEnv(opts: DnsDevEnvOptions): Promise<DnsDevEnv> {
  const dir = await mkdtemp(path.join(os.tmpdir(), opts.tmpPrefix ?? 'dns-devenv-'));
  let bind: BindInstance | undefined;
  let env: DevEnv | undefined;
  const stop = async () => {
    await env?.stop();
    await bind?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    bind = await startBind({ ...opts.bind, dir: path.join(dir, 'bind') });
    env = await startDevEnv({ ...opts.devEnv, dnsAddress: bind.address });
  } catch (err) {
    await stop();
    throw err;
  }
  const b = bind;
  const resolverEnv = () => ({ DNS_RESOLVERS: b.address });
  return {
    dir,
    bind: b,
    env,
    resolverEnv,
    rfc2136Env: () => ({
      DNS_PROVIDER: 'rfc2136',
      RFC2136_NAMESERVER: b.address,
      RFC2136_TSIG_KEY: b.keyName,
      RFC2136_TSIG_SECRET: b.secret,
      RFC2136_TSIG_ALGORITHM: b.algorithm,
      ...resolverEnv(),
    }),
    stop,
  };
}
