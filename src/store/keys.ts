import { createHash } from 'node:crypto';
import { SidecarError } from '../domain/errors.js';
import type { Phase } from '../domain/types.js';
import { assertStoreKey } from './store.js';

/**
 * The store key layout: the one place that spells a key (certmagic keeps
 * its key builders beside its Storage interface for the same reason). A
 * builder either encodes what it is given into safe segments or refuses it
 * with STORE_KEY_INVALID; none returns a key that climbs out of its prefix.
 *
 * CertStore keys:
 * - `certs/<name>/<phase>.json`: a certificate, its key and its meta (secret);
 * - `certs/<name>/backoff.json`: the retry schedule of a failing certificate;
 * - `certs/<name>/<phase>.ari.json`: the CA's renewal window for that
 *   certificate and the time drawn in it (RFC 9773);
 * - `acme/<host>-<hash>/account-key.pem`, `account.json`: one CA account;
 * - `acme/<host>-<hash>/orders/<name>.json`: an order in flight (secret);
 * - `acme/<host>-<hash>/rate-limits.json`: the CA rate-limit ledger;
 * - `claims.json`: which source holds each certificate name and its
 *   hostnames (lifecycle/ownership.ts).
 * - `acme/<host>-<hash>/issuers.json`: the intermediates that CA issued our
 *   certificates under (how a certificate in live/ is recognised as its own);
 * - `<key>.corrupt-<UTC time>` (files) or `corrupt/<key>.corrupt-<UTC time>`
 *   (etcd): a record that failed validation, kept aside (see asideKey).
 * - `platform/docker-sources.json`: the containers that asked for
 *   certificates and when each stopped or went (the grace period);
 *   `platform/docker-reloads.json`: per reload target, the served set it
 *   was last signalled for (lifecycle/platform-memory.ts);
 * - `dns-records/<hash>.json`: a DNS-01 TXT value we added and have not yet
 *   removed (so a restart removes what a crash left behind).
 *
 * Lock names (Locker): `cert-<name>`, `rate-<host>-<hash>`, `acct-<host>-<hash>`.
 *
 * etcd (cluster mode): `/acme-sidecar/<cluster>/{kv,locks,coord}/`, and under
 * `coord/` the prefixes `nodes/`, `live/` and `challenges/`, whose values
 * are sealed like the store's (src/cluster/sealed-coord.ts).
 */

/**
 * Names already found plain: an idle pass builds several keys per
 * certificate, and checking the name again each time was a measurable part
 * of it (a full set is emptied and names are checked again).
 */
const plainNames = new Set<string>();
const MAX_PLAIN_NAMES = 50_000;

/** One certificate name as one key segment: refused unless plain (no '/', no '..'). */
function certSegment(name: string): string {
  if (plainNames.has(name)) return name;
  segment(name, 'certificate name');
  if (plainNames.size >= MAX_PLAIN_NAMES) plainNames.clear();
  plainNames.add(name);
  return name;
}

function segment(value: string, what: string): string {
  assertStoreKey(value);
  if (value.includes('/')) {
    throw new SidecarError('STORE_KEY_INVALID', `invalid ${what} ${JSON.stringify(value)}`);
  }
  return value;
}

/** The stored certificate of one phase. */
export function storedKey(name: string, phase: Phase): string {
  return `certs/${certSegment(name)}/${phase}.json`;
}

/** A certificate's retry schedule (survives restarts). */
export function backoffKey(name: string): string {
  return `certs/${certSegment(name)}/backoff.json`;
}

/** The ARI record (window, chosen time, next check) of a stored certificate. */
export function ariKey(name: string, phase: Phase): string {
  return `certs/${certSegment(name)}/${phase}.ari.json`;
}

/** Who holds each certificate name and hostname (the first source that asked). */
export function claimsKey(): string {
  return 'claims.json';
}

/** What the Docker platform remembers across restarts: sources seen, or reload targets signalled. */
export function platformRecordKey(record: 'docker-sources' | 'docker-reloads'): string {
  return `platform/${record}.json`;
}

/** The lock held while a certificate is worked on. */
export function certLockName(name: string): string {
  return `cert-${certSegment(name)}`;
}

/** Longest readable host part of an account prefix; the hash keeps it unique. */
const MAX_HOST_PART = 100;

/**
 * Store prefix for one CA directory's account: readable host, plus a hash of
 * the whole URL for uniqueness. Anything that would not be a plain segment
 * (runs of dots, a leading dot or dash, an empty or very long host) is
 * encoded, never refused; real hostnames keep the layout they always had.
 */
export function accountPrefix(directoryUrl: string): string {
  const u = new URL(directoryUrl);
  const host = `${u.hostname}${u.port ? '-' + u.port : ''}`
    .replace(/[^A-Za-z0-9.-]/g, '_')
    .replace(/\.{2,}/g, '_')
    .replace(/^[.-]/, '_')
    .slice(0, MAX_HOST_PART);
  const hash = createHash('sha256').update(directoryUrl).digest('hex').slice(0, 12);
  return `acme/${host || '_'}-${hash}`;
}

/** The account's private key (PEM, secret). */
export function accountKeyKey(directoryUrl: string): string {
  return `${accountPrefix(directoryUrl)}/account-key.pem`;
}

/** The account's URL and contact, as the CA registered it. */
export function accountRecordKey(directoryUrl: string): string {
  return `${accountPrefix(directoryUrl)}/account.json`;
}

/** An order in flight for one certificate at one CA (the order journal). */
export function orderJournalKey(directoryUrl: string, certName: string): string {
  return `${accountPrefix(directoryUrl)}/orders/${certSegment(certName)}.json`;
}

/** The rate-limit ledger of one CA account. */
export function rateLedgerKey(directoryUrl: string): string {
  return `${accountPrefix(directoryUrl)}/rate-limits.json`;
}

/** The lock held while the rate-limit ledger is read and written. */
export function rateLedgerLockName(directoryUrl: string): string {
  return `rate-${accountPrefix(directoryUrl).split('/').pop() ?? 'ca'}`;
}

/** The intermediates each CA issued our certificates under. */
export function issuersKey(directoryUrl: string): string {
  return `${accountPrefix(directoryUrl)}/issuers.json`;
}

/** The lock held while a CA account is recovered or registered (once, across replicas). */
export function accountLockName(directoryUrl: string): string {
  return `acct-${accountPrefix(directoryUrl).split('/').pop() ?? 'ca'}`;
}

/** Where corrupt records go in etcd (files stay beside the original). */
export const CORRUPT_PREFIX = 'corrupt';

/**
 * Where a record that failed validation is kept aside: `<key>.corrupt-<UTC
 * time, compact ISO 8601>` beside it, or under `corrupt/` (etcd, where a
 * listing of certificates must not trip over it). `n` > 0 tells apart two
 * records kept aside in the same second.
 */
export function asideKey(
  key: string,
  at: Date,
  opts: { prefix?: boolean; n?: number } = {},
): string {
  assertStoreKey(key);
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const n = opts.n ? `-${opts.n}` : '';
  const aside = `${opts.prefix ? `${CORRUPT_PREFIX}/` : ''}${key}.corrupt-${stamp}${n}`;
  assertStoreKey(aside);
  return aside;
}

/** Where DNS-01 TXT records in flight are recorded (list it to find leftovers). */
export const DNS_RECORDS_PREFIX = 'dns-records';

/**
 * One TXT value at one name. Both come from DNS and the CA, so the key is
 * their hash: nothing untrusted is spelled into it.
 */
export function dnsRecordKey(fqdn: string, value: string): string {
  const hash = createHash('sha256').update(`${fqdn.toLowerCase()}\n${value}`).digest('hex');
  return `${DNS_RECORDS_PREFIX}/${hash.slice(0, 32)}.json`;
}

/** Under the cluster's `coord/`: every node's registration, `nodes/<node>`. */
export const NODES_PREFIX = 'nodes/';
/** Under `coord/`: what every replica should serve, `live/<name>`. */
export const LIVE_PREFIX = 'live/';
/** Under `coord/`: HTTP-01 tokens in flight, `challenges/<token>`. */
export const CHALLENGES_PREFIX = 'challenges/';

/**
 * Where one cluster keeps its state in etcd. Everything lives under
 * `/acme-sidecar/<CLUSTER_NAME>/`, so several clusters (or other programs)
 * can share an etcd:
 * - `kv/<store key>`: CertStore values, each sealed (see sealed-value.ts);
 * - `locks/<lock name>`: Locker keys, attached to the holder's lease;
 * - `coord/`: free for cluster coordination (election, node registry,
 *   challenge tokens): src/cluster/ owns everything below it, and seals
 *   every value it reads back with the full etcd key as associated data.
 *
 * Store and lock keys are validated with assertStoreKey, so they cannot
 * climb out of their prefix.
 */
export interface ClusterKeyLayout {
  readonly root: string;
  readonly kv: string;
  readonly locks: string;
  readonly coord: string;
  /** A value sealed by the cluster key, so a replica with another key fails at startup. */
  readonly keyCheck: string;
}

export function clusterKeyLayout(clusterName: string): ClusterKeyLayout {
  const root = `/acme-sidecar/${segment(clusterName, 'cluster name')}/`;
  return {
    root,
    kv: `${root}kv/`,
    locks: `${root}locks/`,
    coord: `${root}coord/`,
    keyCheck: `${root}key-check`,
  };
}
