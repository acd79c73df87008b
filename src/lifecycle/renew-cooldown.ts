/**
 * May an operator's `renew` force this certificate now? One forced renewal
 * per certificate at a time, and none again within the cooldown after the
 * last one started, whatever `RATE_LIMITS` allows: a script or a person
 * calling `renew` in a loop must not spend the CA's budget (Let's Encrypt
 * counts failed orders too). Pure: the caller passes what it remembers and
 * the time.
 */

export const RenewRefusal = {
  /** A forced renewal of this certificate is running now. */
  InProgress: 'RenewInProgress',
  /** The last forced renewal started less than the cooldown ago. */
  Cooldown: 'RenewCooldown',
} as const;
export type RenewRefusal = (typeof RenewRefusal)[keyof typeof RenewRefusal];

/** What the daemon remembers of the last forced renewal of one certificate. */
export interface LastForcedRenewal {
  readonly startedAt: Date;
  readonly running: boolean;
}

export type ForcedRenewDecision =
  | { readonly allow: true }
  | {
      readonly allow: false;
      readonly reason: RenewRefusal;
      /** Whole seconds until a new `renew` may be accepted (0 while one runs: unknown). */
      readonly secondsLeft: number;
    };

export function forcedRenewDecision(
  last: LastForcedRenewal | undefined,
  now: Date,
  cooldownSeconds: number,
): ForcedRenewDecision {
  if (!last) return { allow: true };
  const elapsedMs = now.getTime() - last.startedAt.getTime();
  const leftMs = cooldownSeconds * 1000 - elapsedMs;
  if (last.running) {
    return {
      allow: false,
      reason: RenewRefusal.InProgress,
      secondsLeft: Math.max(0, Math.ceil(leftMs / 1000)),
    };
  }
  if (leftMs > 0)
    return { allow: false, reason: RenewRefusal.Cooldown, secondsLeft: Math.ceil(leftMs / 1000) };
  return { allow: true };
}
