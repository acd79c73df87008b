// pebble-challtestsrv as the DNS server Pebble asks: every A query answers
// 127.0.0.1, so Pebble's validator reaches our nginx for any hostname.
import path from 'node:path';
import {
  goPebbleBinaries,
  isExecutable,
  missingPebbleMessage,
  type PebbleBinaries,
} from './pebble.js';
import { pidListensOn, spawnManaged, waitUntilReady, type ManagedProcess } from './proc.js';

export interface ChallTestSrvOptions {
  dnsPort: number;
  managementPort: number;
  /** Directory for the log file. */
  dir: string;
  /** The binaries (resolvePebbleBinaries()). Default: Pebble 2.9's (goPebbleBinaries()). */
  binaries?: PebbleBinaries;
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
  const binaries = opts.binaries ?? goPebbleBinaries();
  if (!isExecutable(binaries.challtestsrv)) {
    throw new Error(missingPebbleMessage(binaries.challtestsrv));
  }
  const proc = spawnManaged(
    'pebble-challtestsrv',
    binaries.challtestsrv,
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
      // 2.9's DNS-over-HTTPS listener (default :8443, every address) is off
      // too; Debian's 2.4 has no such flag.
      ...(binaries.source === 'go' ? ['-doh', ''] : []),
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
