// pebble-challtestsrv as the DNS server Pebble asks: every A query answers
// 127.0.0.1, so Pebble's validator reaches our nginx for any hostname.
import path from 'node:path';
import { pidListensOn, spawnManaged, waitUntilReady, type ManagedProcess } from './proc.js';

export const CHALLTESTSRV_BIN = '/usr/bin/pebble-challtestsrv';

export interface ChallTestSrvOptions {
  dnsPort: number;
  managementPort: number;
  /** Directory for the log file. */
  dir: string;
}

export interface ChallTestSrv {
  process: ManagedProcess;
  /** `127.0.0.1:<port>`, for Pebble's `-dnsserver`. */
  dnsAddress: string;
  /** e.g. `http://127.0.0.1:8055` — `/set-txt`, `/clear-txt`, `/add-a` for DNS-01 tests. */
  managementUrl: string;
  stop(): Promise<void>;
}

export async function startChallTestSrv(opts: ChallTestSrvOptions): Promise<ChallTestSrv> {
  const dnsAddress = `127.0.0.1:${opts.dnsPort}`;
  const proc = spawnManaged(
    'pebble-challtestsrv',
    CHALLTESTSRV_BIN,
    [
      // Every name resolves to 127.0.0.1 ...
      '-defaultIPv4',
      '127.0.0.1',
      // ... and has no AAAA: Pebble asks AAAA first and dials only the first
      // address it gets, so an IPv6 answer would bypass our IPv4 nginx.
      '-defaultIPv6',
      '',
      '-dns01',
      dnsAddress,
      '-management',
      `127.0.0.1:${opts.managementPort}`,
      // Its own challenge responders are off: nginx answers HTTP-01, and the
      // default :5002 listener would otherwise steal (or clash with) that port
      // and listen on every address.
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
    ],
    { logPath: path.join(opts.dir, 'challtestsrv.log') },
  );
  // DNS listens on UDP and TCP; this process holding the TCP side and the
  // management port is our readiness signal.
  await waitUntilReady(
    proc,
    async () => pidListensOn(proc.pid, opts.managementPort) && pidListensOn(proc.pid, opts.dnsPort),
    'its DNS and management ports',
  );
  return {
    process: proc,
    dnsAddress,
    managementUrl: `http://127.0.0.1:${opts.managementPort}`,
    stop: () => proc.stop(),
  };
}
