// Check that the real components the devenv runs are installed, and say how
// to install the missing ones: Pebble 2.9 with devenv/install-pebble.sh, the
// rest as Debian packages.
import { NGINX_BIN } from './nginx.js';
import {
  goPebbleBinaries,
  isExecutable,
  missingPebbleMessage,
  resolvePebbleBinaries,
  DEBIAN_PEBBLE_BINARIES,
  type PebbleBinaries,
} from './pebble.js';

interface Requirement {
  path: string;
  debianPackage: string;
}

const DEBIAN_REQUIREMENTS: readonly Requirement[] = [
  { path: NGINX_BIN, debianPackage: 'nginx' },
  { path: '/usr/bin/openssl', debianPackage: 'openssl' },
  // DNS-01 (test/e2e/dns01.test.ts): BIND for RFC 2136, PowerDNS for its API.
  { path: '/usr/sbin/named', debianPackage: 'bind9' },
  { path: '/usr/sbin/tsig-keygen', debianPackage: 'bind9' },
  { path: '/usr/bin/nsupdate', debianPackage: 'bind9-dnsutils' },
  { path: '/usr/bin/dig', debianPackage: 'bind9-dnsutils' },
  // pdns-backend-sqlite3 installs no program: devenv/pdns.ts checks its schema file.
  { path: '/usr/sbin/pdns_server', debianPackage: 'pdns-server' },
  { path: '/usr/bin/sqlite3', debianPackage: 'sqlite3' },
];

export interface PrereqOptions {
  /**
   * Accept Debian's Pebble 2.4 (package `pebble`) when Pebble 2.9 is not
   * installed: `npm run demo` on a machine without Go. Never for tests.
   */
  allowDebianPebble?: boolean;
}

export interface PrereqResult {
  ok: boolean;
  missing: string[];
  /**
   * Empty when ok; otherwise what is missing and what installs it (the
   * apt-get command, if any, comes last).
   */
  message: string;
  /** The Pebble binaries to run, when found. */
  pebble?: PebbleBinaries;
}

export function checkPrereqs(opts: PrereqOptions = {}): PrereqResult {
  const pebble = resolvePebbleBinaries(opts.allowDebianPebble);
  const missingReqs = DEBIAN_REQUIREMENTS.filter((r) => !isExecutable(r.path));
  const missing: string[] = [];
  const hints: string[] = [];
  if (!pebble) {
    const go = goPebbleBinaries();
    missing.push(...[go.pebble, go.challtestsrv].filter((p) => !isExecutable(p)));
    hints.push(missingPebbleMessage(go.pebble));
    // The demo may run on Debian's Pebble 2.4 instead.
    if (opts.allowDebianPebble) {
      missingReqs.push(
        ...[DEBIAN_PEBBLE_BINARIES.pebble, DEBIAN_PEBBLE_BINARIES.challtestsrv]
          .filter((p) => !isExecutable(p))
          .map((p) => ({ path: p, debianPackage: 'pebble' })),
      );
    }
  }
  missing.push(...missingReqs.map((r) => r.path));
  if (missing.length === 0) return { ok: true, missing: [], message: '', pebble };
  const packages = [...new Set(missingReqs.map((r) => r.debianPackage))];
  if (packages.length > 0) {
    hints.push(
      `Install the Debian package(s): apt-get update && apt-get install -y ${packages.join(' ')}`,
    );
  }
  return {
    ok: false,
    missing,
    message: `devenv needs ${missing.join(', ')} — missing. ${hints.join(' ')}`,
    ...(pebble ? { pebble } : {}),
  };
}

/** Throws with the install hint when something is missing; returns the Pebble to run. */
export function assertPrereqs(opts: PrereqOptions = {}): PebbleBinaries {
  const r = checkPrereqs(opts);
  if (!r.ok || !r.pebble) throw new Error(r.message);
  return r.pebble;
}
