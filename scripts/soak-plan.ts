/**
 * The soak's decisions, apart from its I/O (scripts/soak.ts): a seeded random
 * source, the fault deck, how a state file is damaged, and the figures it
 * prints. Pure functions, table-tested in test/unit/soak-plan.test.ts, so a
 * run can be replayed from its seed.
 */

/** Every fault the soak injects. */
export const FAULT_KINDS = [
  'kill -9',
  'CA down',
  'Pebble restart',
  'corrupt record',
  'disk full',
  'nginx reload',
  'Cattle API fault',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** mulberry32: a small seeded generator, uniform in [0, 1). Same seed, same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A number in [min, max). */
export function between(random: () => number, min: number, max: number): number {
  return min + (max - min) * random();
}

/** One of `items`, uniformly. */
export function pick<T>(random: () => number, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

/**
 * Fault kinds dealt from a shuffled deck holding each kind once, shuffled
 * again when empty: random order, but every kind comes up once in each
 * FAULT_KINDS.length faults, so even a one-minute run sees them all.
 */
export function faultDeck(random: () => number, kinds: readonly FaultKind[] = FAULT_KINDS) {
  let deck: FaultKind[] = [];
  return (): FaultKind => {
    if (deck.length === 0) {
      deck = [...kinds];
      for (let i = deck.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [deck[i], deck[j]] = [deck[j] as FaultKind, deck[i] as FaultKind];
      }
    }
    return deck.pop() as FaultKind;
  };
}

export const CORRUPTIONS = ['garbage', 'truncated', 'empty', 'wrong shape'] as const;
export type Corruption = (typeof CORRUPTIONS)[number];

/** What a state file becomes under each corruption (issue 16's table, without the key swap). */
export function corruptBytes(kind: Corruption, good: Buffer, random: () => number): Buffer {
  switch (kind) {
    case 'garbage': {
      // A run of random bytes over a random place (a bad sector).
      const out = Buffer.from(good);
      const at = Math.floor(random() * Math.max(1, out.length));
      for (let i = at; i < Math.min(out.length, at + 16); i++) out[i] = Math.floor(random() * 256);
      return out.length > 0 ? out : Buffer.from('\u0001garbage');
    }
    case 'truncated':
      return good.subarray(0, Math.floor(good.length * random()));
    case 'empty':
      return Buffer.alloc(0);
    case 'wrong shape':
      return good.toString('utf8').trimStart().startsWith('-----')
        ? Buffer.from('{"not": "a key"}\n')
        : Buffer.from(JSON.stringify({ version: 99, data: [1, 2, 3] }));
  }
}

/**
 * A state file the soak may damage: anything under STATE_DIR (relative,
 * '/'-separated) but live/ and archive/ (what nginx serves and what live/
 * points to), dot files (locks, temp files) and copies already kept aside.
 */
export function isCorruptible(rel: string): boolean {
  const parts = rel.split('/');
  if (parts[0] === 'live' || parts[0] === 'archive') return false;
  if (parts.some((p) => p.startsWith('.'))) return false;
  return !rel.includes('.corrupt-') && !rel.endsWith('.tmp');
}

/** Pebble's own log: `Added order "<id>" to the db`. */
export function pebbleOrderIds(log: string): string[] {
  return [...log.matchAll(/Added order "([^"]+)" to the db/g)].map((m) => m[1] as string);
}

/** Orders no `order placed` line names. */
export const UNNAMED = '(unnamed)';

/**
 * Orders per certificate: Pebble's order ids, named by the daemon's
 * `order placed` log lines (the order URL ends in the id). Ids the daemon
 * never logged are UNNAMED: placed, then the daemon was killed or could not
 * write the order's journal (full disk) before its log line.
 */
export function ordersPerCertificate(
  pebbleIds: readonly string[],
  daemonLines: readonly Record<string, unknown>[],
): Map<string, number> {
  const owner = new Map<string, string>();
  for (const l of daemonLines) {
    if (l.message !== 'order placed' || typeof l.order !== 'string') continue;
    const id = l.order.slice(l.order.lastIndexOf('/') + 1);
    owner.set(id, String(l.cert));
  }
  const counts = new Map<string, number>();
  for (const id of pebbleIds) {
    const cert = owner.get(id) ?? UNNAMED;
    counts.set(cert, (counts.get(cert) ?? 0) + 1);
  }
  return counts;
}

/**
 * Tracks, per certificate, how long it was out of its target state: the
 * longest stretch, from the first probe that found it out to the first that
 * found it back (or `end`, when it never came back).
 */
export class OutageTracker {
  private readonly since = new Map<string, number>();
  private longestMs = 0;
  private longestName = '';

  observe(name: string, inTarget: boolean, at: number): void {
    const start = this.since.get(name);
    if (inTarget) {
      if (start !== undefined) this.close(name, start, at);
    } else if (start === undefined) this.since.set(name, at);
  }

  private close(name: string, start: number, at: number): void {
    this.since.delete(name);
    if (at - start > this.longestMs) {
      this.longestMs = at - start;
      this.longestName = name;
    }
  }

  /** The longest outage so far; open outages counted up to `end`. */
  longest(end: number): { ms: number; name: string } {
    let best = { ms: this.longestMs, name: this.longestName };
    for (const [name, start] of this.since) {
      if (end - start > best.ms) best = { ms: end - start, name };
    }
    return best;
  }

  /** Certificates out of their target state now. */
  out(): string[] {
    return [...this.since.keys()].sort();
  }
}
