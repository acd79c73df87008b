// Check that the real components the devenv runs are installed, and say which
// Debian packages provide the missing ones.
import { accessSync, constants } from 'node:fs';
import { CHALLTESTSRV_BIN } from './challtestsrv.js';
import { NGINX_BIN } from './nginx.js';
import { PEBBLE_BIN } from './pebble.js';

interface Requirement {
  path: string;
  debianPackage: string;
}

const REQUIREMENTS: readonly Requirement[] = [
  { path: PEBBLE_BIN, debianPackage: 'pebble' },
  { path: CHALLTESTSRV_BIN, debianPackage: 'pebble' },
  { path: NGINX_BIN, debianPackage: 'nginx' },
  { path: '/usr/bin/openssl', debianPackage: 'openssl' },
];

export interface PrereqResult {
  ok: boolean;
  missing: string[];
  /** Empty when ok; otherwise what is missing and the apt-get command that fixes it. */
  message: string;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function checkPrereqs(): PrereqResult {
  const missingReqs = REQUIREMENTS.filter((r) => !executable(r.path));
  if (missingReqs.length === 0) return { ok: true, missing: [], message: '' };
  const packages = [...new Set(missingReqs.map((r) => r.debianPackage))];
  const missing = missingReqs.map((r) => r.path);
  return {
    ok: false,
    missing,
    message:
      `devenv needs ${missing.join(', ')} — missing. ` +
      `Install the Debian package(s): apt-get update && apt-get install -y ${packages.join(' ')}`,
  };
}

/** Throws with the install hint when something is missing. */
export function assertPrereqs(): void {
  const r = checkPrereqs();
  if (!r.ok) throw new Error(r.message);
}
