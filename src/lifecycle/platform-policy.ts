import type { Phase } from '../domain/types.js';
import type { PlatformCopy } from '../domain/status.js';
import type { LiveFacts } from './policy.js';
import { PlatformReason } from './reasons.js';

export { PlatformReason };

/**
 * Reconciling the platform's copy of a certificate with the one served
 * locally: the old Dent sidecar's flowchart, as one pure decision. The
 * platform mirrors what nginx serves here (live/), with two exceptions: a
 * certificate someone else created is never overwritten, and a placeholder
 * never replaces a valid certificate of ours (the local copy was lost, and
 * Cattle never returns a private key, so a new one is being issued).
 * Its reasons are PlatformReason, in reasons.ts.
 */
export interface PlatformFacts {
  readonly live?: LiveFacts;
  readonly copy?: PlatformCopy;
  /** Serials of what we hold, by phase, to name what the platform has. */
  readonly serials: Readonly<Partial<Record<Phase, string>>>;
}

export type PlatformAction =
  | { readonly kind: 'push'; readonly reason: PlatformReason }
  | { readonly kind: 'conflict'; readonly reason: PlatformReason }
  | { readonly kind: 'none'; readonly reason: PlatformReason };

const DAY_MS = 24 * 60 * 60 * 1000;

/** Serial numbers compared as numbers, whatever their spelling (hex, leading zeros). */
export function sameSerial(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  try {
    return BigInt(`0x${a}`) === BigInt(`0x${b}`);
  } catch {
    return false;
  }
}

export function decidePlatform(f: PlatformFacts, now: Date): PlatformAction {
  const { live, copy } = f;
  if (!live || live.phase === 'foreign')
    return { kind: 'none', reason: PlatformReason.NothingServed };
  if (!copy) return { kind: 'push', reason: PlatformReason.PlatformMissing };
  if (!copy.ours) return { kind: 'conflict', reason: PlatformReason.NotOurs };
  if (sameSerial(copy.serial, live.serial)) return { kind: 'none', reason: PlatformReason.InSync };
  const copyValid = copy.notAfter === undefined || now < new Date(copy.notAfter);
  const copyIsPlaceholder = sameSerial(copy.serial, f.serials['self-signed']);
  if (live.phase === 'self-signed' && copyValid && !copyIsPlaceholder) {
    return { kind: 'none', reason: PlatformReason.PlatformKept };
  }
  if (copyIsPlaceholder) return { kind: 'push', reason: PlatformReason.PlatformSelfSigned };
  if (sameSerial(copy.serial, f.serials.staging) && live.phase === 'production') {
    return { kind: 'push', reason: PlatformReason.PlatformStaging };
  }
  if (copy.notAfter && new Date(copy.notAfter).getTime() - now.getTime() < 7 * DAY_MS) {
    return { kind: 'push', reason: PlatformReason.PlatformExpiring };
  }
  return { kind: 'push', reason: PlatformReason.PlatformOutdated };
}
