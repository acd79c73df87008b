import { X509Certificate, createPrivateKey } from 'node:crypto';
import { KEY_TYPES, PHASES, type KeyType, type Phase, type StoredCert } from '../domain/types.js';
import type { AriRecord } from '../lifecycle/ari.js';
import { parseClaims, type ClaimsRecord } from '../lifecycle/ownership.js';
import {
  parseReloadRecord,
  parseSourcesRecord,
  type ReloadRecord,
  type SourcesRecord,
} from '../lifecycle/platform-memory.js';
import type { Ledger } from '../lifecycle/rate-limit-ledger.js';
import { parseLedger } from '../lifecycle/rate-limit-ledger.js';
import { pooledBundle } from '../util/pem-pool.js';
import { bundleProblem, splitPemChain } from '../util/x509.js';
import {
  bad,
  jsonObject,
  ok,
  shapeProblem,
  type Json,
  type Parsed,
  type RecordKind,
} from './records.js';

/**
 * Every kind of record the sidecar keeps, with what makes one valid and the
 * safe default its reader falls back to when it is not (see records.ts).
 * The defaults, one per kind:
 *
 * | record | key | when corrupt |
 * | --- | --- | --- |
 * | certificate | `certs/<name>/<phase>.json` | missing: adopted back from live/ when live/ holds a valid one from that CA, else issued again (staging first) |
 * | retry schedule | `certs/<name>/backoff.json` | no schedule: try now; the next failure starts it again |
 * | ARI state | `certs/<name>/<phase>.ari.json` | missing: the CA is asked again; the lifetime rule until it answers |
 * | rate-limit ledger | `acme/<ca>/rate-limits.json` | spent: no order (but ARI renewals) until the longest window has passed |
 * | order journal | `acme/<ca>/orders/<name>.json` | lost: the CA's list of the account's orders is searched before a new one is placed |
 * | account | `acme/<ca>/account.json` | found again with onlyReturnExisting (same key) |
 * | account key | `acme/<ca>/account-key.pem` | a new key and a new account (warned); the old files kept aside |
 * | issuers | `acme/<ca>/issuers.json` | none on record: the CA itself is asked about a certificate (ARI) |
 * | hostname claims | `claims.json` | no claims: DOMAINS first, then discovery order, claim again (rewritten at once) |
 * | Docker sources | `platform/docker-sources.json` | every certificate in the store not asked for now starts a full grace period now (never dropped at once) |
 * | Docker reloads | `platform/docker-reloads.json` | every reload target is signalled once (a needless reload costs nothing; a missed one serves an old certificate) |
 */

const PEM_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** A stored certificate of `phase`: its meta, and a bundle whose key matches its leaf. */
export function storedCertKind(phase: Phase): RecordKind<StoredCert> {
  const kind = {
    what: 'certificate',
    fallback: 'treated as missing (adopted from live/ if valid there, else issued again)',
    cacheable: true,
    parse(raw: Buffer): Parsed<StoredCert> {
      const shaped = shape(raw);
      if (!shaped.ok) return shaped;
      const stored = shaped.value;
      // Checked before pooling (pem-pool.ts: the check would make the shared fullchain flat).
      const chain = bundleProblem(stored.bundle);
      if (chain) return bad(chain);
      const serial = new X509Certificate(stored.bundle.cert).serialNumber.toUpperCase();
      if (serial !== stored.meta.serial) return bad("meta.serial is not the certificate's");
      return ok(pooled(stored));
    },
    // Everything but the key and chain checks (costly), which these bytes passed before.
    parseVerified(raw: Buffer): Parsed<StoredCert> {
      const shaped = shape(raw);
      return shaped.ok ? ok(pooled(shaped.value)) : shaped;
    },
  };
  /** The same strings as live/'s copy of it (util/pem-pool.ts). */
  function pooled(stored: StoredCert): StoredCert {
    return { ...stored, bundle: pooledBundle(stored.bundle) };
  }
  /** The shape and phase checks, on the record as parsed. */
  function shape(raw: Buffer): Parsed<StoredCert> {
    const o = jsonObject(raw);
    if (!o.ok) return o;
    const top = shapeProblem(o.value, { meta: 'object', bundle: 'object' });
    if (top) return bad(top);
    const meta = o.value.meta as Json;
    const bundle = o.value.bundle as Json;
    const problem =
      shapeProblem(
        meta,
        {
          name: 'string',
          phase: 'string',
          domains: 'strings',
          directoryUrl: 'string',
          keyType: 'string',
          notBefore: 'date',
          notAfter: 'date',
          serial: 'string',
          chainVerified: 'boolean',
          issuedAt: 'date',
          profile: 'string?',
        },
        'meta.',
      ) ??
      shapeProblem(
        bundle,
        { cert: 'string', chain: 'string', fullchain: 'string', privkey: 'string' },
        'bundle.',
      );
    if (problem) return bad(problem);
    if (meta.phase !== phase || !(PHASES as readonly unknown[]).includes(meta.phase)) {
      return bad(`meta.phase is ${JSON.stringify(meta.phase)}, not ${phase}`);
    }
    if (!(KEY_TYPES as readonly unknown[]).includes(meta.keyType)) {
      return bad(`meta.keyType ${JSON.stringify(meta.keyType)} is not a key type`);
    }
    return ok(o.value as unknown as StoredCert);
  }
  return kind;
}

export interface BackoffRecord {
  readonly attempts: number;
  readonly nextRetry?: string;
  readonly lastError?: { code: string; message: string; at: string };
  readonly context?: string;
}

export const backoffKind: RecordKind<BackoffRecord> = {
  what: 'retry schedule',
  // Safe default: retry at once. One attempt costs less than a day's wait
  // for a certificate that may be expiring; a crash loop is held back by
  // the rate-limit budget, and the next failure starts the schedule again.
  fallback: 'no schedule: the certificate is tried now, and a failure starts the schedule again',
  parse(raw) {
    const o = jsonObject(raw);
    if (!o.ok) return o;
    const problem = shapeProblem(o.value, {
      attempts: 'number',
      nextRetry: 'date?',
      lastError: 'object?',
      context: 'string?',
    });
    if (problem) return bad(problem);
    if (o.value.lastError !== undefined) {
      const e = shapeProblem(
        o.value.lastError as Json,
        { code: 'string', message: 'string', at: 'date' },
        'lastError.',
      );
      if (e) return bad(e);
    }
    return ok(o.value as unknown as BackoffRecord);
  },
};

export const ariKind: RecordKind<AriRecord> = {
  what: 'renewal information (ARI) record',
  // Safe default: as if never asked. The CA is asked again on this pass,
  // and the lifetime rule decides until it answers.
  fallback: 'treated as missing: the CA is asked again, and the lifetime rule applies meanwhile',
  // AriRecord is read-only: one parse per content, shared by every reader.
  shared: true,
  parse(raw) {
    const o = jsonObject(raw);
    if (!o.ok) return o;
    const problem = shapeProblem(o.value, {
      serial: 'string',
      directoryUrl: 'string',
      checkedAt: 'date',
      nextCheck: 'date',
      window: 'object?',
      renewAt: 'date?',
      explanationUrl: 'string?',
      problem: 'string?',
    });
    if (problem) return bad(problem);
    if (o.value.window !== undefined) {
      const w = shapeProblem(o.value.window as Json, { start: 'date', end: 'date' }, 'window.');
      if (w) return bad(w);
    }
    return ok(o.value as unknown as AriRecord);
  },
};

export const ledgerKind: RecordKind<Ledger> = {
  what: 'rate-limit ledger',
  // Safe default: spent. What it counted is unknown, so the budget is
  // taken as used up for the current window (lifecycle/rate-limit-ledger.ts
  // lostLedger), not as empty: an empty one could let through orders the
  // CA would refuse, and earn a longer wait.
  fallback:
    'counted as spent: no new order (but renewals in the CA window) until its longest window has passed',
  parse(raw) {
    const o = jsonObject(raw);
    if (!o.ok) return o;
    const problem = shapeProblem(o.value, { events: 'array', blocks: 'array' });
    if (problem) return bad(problem);
    const ledger = parseLedger(raw.toString('utf8'));
    const dropped =
      (o.value.events as unknown[]).length -
      ledger.events.length +
      ((o.value.blocks as unknown[]).length - ledger.blocks.length);
    if (dropped > 0) return bad(`${dropped} entr${dropped === 1 ? 'y is' : 'ies are'} malformed`);
    return ok(ledger);
  },
};

/**
 * An order in flight, kept in the store from `newOrder` until the
 * certificate is downloaded. Whoever issues this certificate next (this
 * process after a crash, or a new cluster leader after the old one died)
 * resumes the same order instead of sending a second one to the CA.
 */
export interface OrderJournal {
  readonly url: string;
  readonly domains: string[];
  readonly keyType: KeyType;
  /** The ACME profile the order named, if any. */
  readonly profile?: string;
  readonly createdAt: string;
  /** The key the CSR was (or will be) made with; written before finalize. Secret. */
  readonly privkey?: string;
}

export const journalKind: RecordKind<OrderJournal> = {
  what: 'order journal',
  // Safe default: an order may be in flight that we no longer know of. The
  // CA's list of the account's orders is searched for a workable one for
  // these names before a new order is placed (acme-issuer.ts).
  fallback:
    'lost: the CA is asked for an order in flight for these names before a new one is placed',
  parse(raw) {
    const o = jsonObject(raw);
    if (!o.ok) return o;
    const problem = shapeProblem(o.value, {
      url: 'string',
      domains: 'strings',
      keyType: 'string',
      profile: 'string?',
      createdAt: 'date',
      privkey: 'string?',
    });
    if (problem) return bad(problem);
    if (!(KEY_TYPES as readonly unknown[]).includes(o.value.keyType))
      return bad('keyType is not a key type');
    if (typeof o.value.privkey === 'string') {
      try {
        createPrivateKey(o.value.privkey);
      } catch {
        return bad('privkey does not parse');
      }
    }
    return ok(o.value as unknown as OrderJournal);
  },
};

export interface AccountRecord {
  readonly url: string;
  readonly directoryUrl: string;
  readonly email?: string;
  readonly createdAt: string;
}

export const accountRecordKind: RecordKind<AccountRecord> = {
  what: 'ACME account record',
  // Safe default: the key still names the account; the CA finds it again
  // (RFC 8555 section 7.3.1, onlyReturnExisting) without a new registration.
  fallback: 'the account is found again at the CA with its key (onlyReturnExisting)',
  parse(raw) {
    const o = jsonObject(raw);
    if (!o.ok) return o;
    const problem = shapeProblem(o.value, {
      url: 'string',
      directoryUrl: 'string',
      email: 'string?',
      createdAt: 'date',
    });
    if (problem) return bad(problem);
    try {
      new URL(o.value.url as string);
    } catch {
      return bad('url is not a URL');
    }
    return ok(o.value as unknown as AccountRecord);
  },
};

export const accountKeyKind: RecordKind<string> = {
  what: 'ACME account key',
  // No safe way back to the old account without its key: a new key and a
  // new account, said at warn level; the old files are kept aside.
  fallback: 'a new account key is made and a new account registered',
  parse(raw) {
    const pem = raw.toString('utf8');
    if (pem.trim() === '') return bad('empty');
    if (!PEM_KEY.test(pem)) return bad('not a PEM private key');
    try {
      createPrivateKey(pem);
    } catch (err) {
      return bad(`the key does not parse: ${(err as Error).message}`);
    }
    return ok(pem);
  },
};

/** Intermediates (PEM) a CA issued our certificates under, newest first. */
export interface IssuersRecord {
  readonly issuers: string[];
}

export const issuersKind: RecordKind<IssuersRecord> = {
  what: 'CA issuers record',
  // Safe default: none on record. A certificate in live/ is then recognised
  // by asking the CA (ARI renewalInfo), or not at all (issued again).
  fallback: 'none on record: the CA is asked whether it issued a certificate found in live/',
  parse(raw) {
    const o = jsonObject(raw);
    if (!o.ok) return o;
    const problem = shapeProblem(o.value, { issuers: 'strings' });
    if (problem) return bad(problem);
    for (const pem of o.value.issuers as string[]) {
      const [one] = splitPemChain(pem);
      if (!one) return bad('an issuer is not a PEM certificate');
      new X509Certificate(one);
    }
    return ok(o.value as unknown as IssuersRecord);
  },
};

/** Which source holds each certificate name and its hostnames (lifecycle/ownership.ts). */
export const claimsKind: RecordKind<ClaimsRecord> = {
  what: 'hostname claims',
  // Safe default: no claims. The pass claims again in a fixed order (DOMAINS
  // first, then discovery order) and writes the record back at once, so a
  // newcomer can win a name only in the pass that lost the record.
  fallback: 'no claims: claimed again, DOMAINS first, then in discovery order',
  parse(raw) {
    const claims = parseClaims(raw.toString('utf8'));
    return claims ? ok(claims) : bad('not a claims record');
  },
  // Read-only (ClaimsRecord): parsed once per change, not at every pass (the
  // daemon keeps the record's bytes across passes while its watch vouches).
  shared: true,
};

/** Docker containers seen, what they asked for and when they stopped or went (lifecycle/platform-memory.ts). */
export const sourcesKind: RecordKind<SourcesRecord> = {
  what: 'Docker sources record',
  // Safe default: a lost record means every certificate the store holds that
  // no container (or DOMAINS) asks for now was removed just now: its full
  // grace period (DOCKER_STOPPED_GRACE_HOURS) starts now, and it is renewed
  // until that ends. Never "dropped at once": a certificate renewed one
  // grace period too long costs an order; one dropped too early may expire
  // while a container comes back.
  fallback:
    'every stored certificate no source asks for now starts its grace period now (DOCKER_STOPPED_GRACE_HOURS)',
  parse(raw) {
    const r = parseSourcesRecord(raw.toString('utf8'));
    return typeof r === 'string' ? bad(r) : ok(r);
  },
};

/** Per reload target, the served set it was last signalled for (lifecycle/platform-memory.ts). */
export const reloadsKind: RecordKind<ReloadRecord> = {
  what: 'Docker reload record',
  // Safe default: nobody known to have been signalled, so every running
  // reload target is signalled once more. A needless reload costs nothing;
  // a missed one leaves a server on an old certificate.
  fallback: 'every reload target is signalled once',
  parse(raw) {
    const r = parseReloadRecord(raw.toString('utf8'));
    return typeof r === 'string' ? bad(r) : ok(r);
  },
};

export type { Parsed };
