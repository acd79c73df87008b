/**
 * Time spans as people read them, shared by the status page and the
 * terminal output of `acme-sidecar status`. Pure: `now` is passed in.
 */

/** Whole seconds from `now` to an ISO 8601 instant; negative once past; null when unknown or unparsable. */
export function secondsUntil(iso: string | null | undefined, now: Date): number | null {
  if (iso === null || iso === undefined) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : Math.floor((t - now.getTime()) / 1000);
}

/**
 * "61 days", "36 hours", "1 minute", "0 seconds": the largest unit that
 * says at least 2 days, else 1 hour, else 1 minute. Days only from two on,
 * so 47 hours never reads as "1 day". A negative span reads as 0 seconds:
 * callers say "ago" themselves.
 */
export function span(seconds: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (seconds >= 2 * 86_400) return plural(Math.floor(seconds / 86_400), 'day');
  if (seconds >= 3_600) return plural(Math.floor(seconds / 3_600), 'hour');
  if (seconds >= 60) return plural(Math.floor(seconds / 60), 'minute');
  return plural(Math.max(0, Math.floor(seconds)), 'second');
}
