import type { CertSpec } from '../domain/types.js';
import type { Action, CertFacts } from '../lifecycle/policy.js';
import type { PlatformFacts } from '../lifecycle/platform-policy.js';
import {
  decisionStableUntil,
  platformStableUntil,
  steadyHolds,
  steadyKey,
  type SteadyMark,
} from '../lifecycle/steady.js';
import { ariKey, storedKey } from '../store/keys.js';
import type { ReconcilerDeps } from './deps.js';

/**
 * The idle shortcut's gather side (issue 15, goal 4): a certificate that
 * settled in a full pass, whose inputs are all the very same since (store
 * records and live/ still vouched for by the daemon's watches, the
 * platform's listed copy the same object), with the same names and
 * profile, and whose next deadline (lifecycle/steady.ts) has not come, is
 * not gathered and decided again: a full pass would decide the same.
 *
 * Inputs are compared by identity, never by content: each source hands
 * out a new identity whenever what it holds may have changed (a watch
 * event, a new page body), and undefined when it cannot vouch (no watch:
 * etcd, NFS, a clustered live/), which never matches. So a source that
 * cannot tell leaves every pass a full one.
 */
export class SteadyTracker {
  private readonly marks = new Map<
    string,
    SteadyMark & {
      readonly keys: readonly string[];
      readonly domains: readonly string[];
      readonly profile: string | undefined;
    }
  >();

  constructor(
    private readonly deps: Pick<ReconcilerDeps, 'store' | 'live' | 'platform' | 'settings'>,
  ) {}

  /** Whether the sources can vouch at all (else no certificate is ever skipped). */
  get enabled(): boolean {
    return (
      this.deps.store.kept !== undefined &&
      this.deps.live.kept !== undefined &&
      (!this.deps.platform.holdsCertificates || this.deps.platform.copyVersion !== undefined)
    );
  }

  /** The store keys a decision on `name` reads (stored records and ARI choices). */
  static keys(name: string): string[] {
    return [
      storedKey(name, 'self-signed'),
      storedKey(name, 'staging'),
      storedKey(name, 'production'),
      ariKey(name, 'staging'),
      ariKey(name, 'production'),
    ];
  }

  /** The identities of `name`'s inputs now (undefined where a source cannot vouch). */
  async inputs(name: string, keys: readonly string[]): Promise<unknown[]> {
    const { store, live, platform } = this.deps;
    const out: unknown[] = keys.map((k) => store.kept?.(k));
    out.push(live.kept?.(name));
    if (platform.holdsCertificates) out.push(await platform.copyVersion?.(name));
    return out;
  }

  /**
   * May `spec` skip this pass (see the class comment)? What `steadyHolds`
   * decides, checked in place: the steady path of every idle pass runs it
   * for every certificate, so it builds no key, array or logger (the
   * garbage of 1000 certificates is most of an idle pass's CPU otherwise).
   */
  holds(spec: CertSpec, now: Date, force: boolean): boolean | Promise<boolean> {
    const mark = this.marks.get(spec.name);
    if (!mark) return false;
    const { store, live, platform } = this.deps;
    let ok =
      !force &&
      now.getTime() < mark.until &&
      mark.profile === spec.profile &&
      sameList(mark.domains, spec.domains) &&
      live.kept?.(spec.name) === mark.inputs[mark.keys.length];
    for (let i = 0; ok && i < mark.keys.length; i++) {
      ok = store.kept?.(mark.keys[i] as string) === mark.inputs[i];
    }
    if (ok && platform.holdsCertificates) {
      const want = mark.inputs[mark.keys.length + 1];
      let v;
      try {
        v = platform.copyVersion?.(spec.name);
      } catch {
        // Answered at once, by throwing: vouches for nothing, like a rejection.
        return this.same(spec.name, undefined, want);
      }
      // At hand (the pass's listing read): no promise per certificate.
      if (!(v instanceof Promise)) return this.same(spec.name, v, want);
      // A platform that cannot answer (Rancher down) vouches for nothing:
      // the full pass then meets the same error where it is handled.
      return v.then(
        (got) => this.same(spec.name, got, want),
        () => this.same(spec.name, undefined, want),
      );
    }
    if (!ok) this.marks.delete(spec.name);
    return ok;
  }

  /** The platform's copy is still the one marked (undefined never is); else the mark goes. */
  private same(name: string, got: unknown, want: unknown): boolean {
    if (got !== undefined && got === want) return true;
    this.marks.delete(name);
    return false;
  }

  /**
   * After a full pass that settled `spec` without acting: remembers its
   * inputs (`after`: taken after the decision; they must still be the same
   * now) and its first deadline. `ariQuietUntil`: until when the ARI
   * refresh would not ask the CA, judged on these same inputs
   * (AriTracker.quietUntil; undefined: it would ask now, so no mark).
   */
  async settled(
    spec: CertSpec,
    now: Date,
    known: {
      readonly facts: CertFacts;
      readonly action: Action;
      readonly platform?: PlatformFacts;
      readonly ariQuietUntil: number | undefined;
      readonly after: readonly unknown[];
    },
  ): Promise<void> {
    this.marks.delete(spec.name);
    if (known.action.kind !== 'none') return;
    const keys = SteadyTracker.keys(spec.name);
    const inputs = await this.inputs(spec.name, keys);
    if (inputs.some((x, i) => x === undefined || x !== known.after[i])) return;
    if (known.ariQuietUntil === undefined) return;
    let until = Math.min(decisionStableUntil(known.facts, now), known.ariQuietUntil);
    if (known.platform) until = Math.min(until, platformStableUntil(known.platform, now));
    if (until <= now.getTime()) return;
    const mark = {
      key: steadyKey(spec.domains, spec.profile),
      domains: spec.domains,
      profile: spec.profile,
      inputs,
      until,
      keys,
    };
    // The in-place check in `holds` is this one.
    if (!steadyHolds(mark, now, { key: mark.key, inputs })) return;
    this.marks.set(spec.name, mark);
  }

  /** Forgets everything (a forced renewal of all, a reload). */
  clear(name?: string): void {
    if (name === undefined) this.marks.clear();
    else this.marks.delete(name);
  }

  /** Forgets the certificates not in `names`. */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.marks.keys()) if (!names.has(name)) this.marks.delete(name);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
