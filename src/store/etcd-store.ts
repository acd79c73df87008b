import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCUnauthenticatedError,
  isRecoverableError,
  type Lease,
  type Namespace,
} from 'etcd3';
import { SidecarError, errorMessage } from '../domain/errors.js';
import { systemClock, type Clock } from '../lifecycle/clock.js';
import { etcdClientOptions, loadKeyring, type EtcdStoreConfig } from './etcd-config.js';
import { asideKey, clusterKeyLayout, type ClusterKeyLayout } from './keys.js';
import { DEFAULT_LOCK_POLL_MS, DEFAULT_LOCK_TIMEOUT_MS, waitForLock } from './lock-wait.js';
import type { Keyring } from './sealed-value.js';
import { assertStoreKey, type CertStore } from './store.js';

export { clusterKeyLayout, type ClusterKeyLayout } from './keys.js';

export interface EtcdCertStoreOptions {
  /** The client; the store does not close it (see createEtcdStore for one that does). */
  readonly client: Etcd3;
  readonly clusterName: string;
  readonly keyring: Keyring;
  /** A lock whose holder stops renewing its lease is released after this long. Default 15 s. */
  readonly leaseTtlSeconds?: number;
  /**
   * Longest any one store operation may take, etcd3's retries included,
   * before it fails with STORE_UNAVAILABLE. Default 5 s.
   */
  readonly operationTimeoutMs?: number;
  /** How often a waiter tries a held lock again. Default 200 ms. */
  readonly lockPollMs?: number;
  /** Written into lock keys, for a human looking at a stuck lock. Default: hostname. */
  readonly nodeName?: string;
  /** Wall clock for the lock keys' `created`. */
  readonly clock?: Clock;
}

export const DEFAULT_LEASE_TTL_SECONDS = 15;
export const DEFAULT_OPERATION_TIMEOUT_MS = 5_000;

interface HeldLock {
  readonly lease: Lease;
}

/**
 * CertStore + Locker on etcd (v3 API, through the `etcd3` package).
 *
 * Values: one put per store() (atomic; etcd is linearizable, so every
 * replica's next load() sees it). Every value is sealed with the cluster
 * key (sealed-value.ts): secrets encrypted, the rest authenticated.
 *
 * Failures: every call is bounded. etcd3 gives each attempt a gRPC deadline
 * (DEFAULT_CALL_TIMEOUT_MS) and retries recoverable failures up to three
 * times on other members; on top of that the store cuts any operation off
 * after `operationTimeoutMs`. Without quorum a linearizable read or a write
 * cannot complete, so they fail with STORE_UNAVAILABLE (retryable) instead
 * of hanging; etcd3's per-member circuit breakers then fail calls fast for
 * 5 s before trying again. A write that failed this way has an unknown
 * outcome (its proposal may commit once quorum returns), which is safe
 * here: every record write is a whole value that is idempotent to repeat. Authentication or permission problems are
 * STORE_UNAUTHORIZED; a refused TLS handshake, STORE_TLS; a value that does
 * not open, STORE_DECRYPT_FAILED.
 *
 * Locks (etcd's own recipe, as in clientv3/concurrency.Mutex, but with
 * polling instead of a revision queue, matching FsCertStore): each lock()
 * grants a lease of `leaseTtlSeconds`, kept alive while held, and creates
 * `locks/<name>` bound to it in a transaction that succeeds only if the key
 * does not exist. unlock() revokes the lease, which deletes the key. A
 * holder that dies (kill -9, partition) stops renewing, and etcd deletes
 * the key when the lease expires: the lock is free again within the TTL.
 * A lock() that fails or times out revokes (or at least abandons) its
 * lease, so a transaction that succeeded unseen cannot leave a lock held
 * forever. Caveat shared with every lease-based lock: a holder cut off from
 * etcd for longer than the TTL has lost the lock while it may still be
 * working; callers re-read what they decided on (the Locker contract).
 */
export class EtcdCertStore implements CertStore {
  readonly layout: ClusterKeyLayout;
  private readonly client: Etcd3;
  private readonly kv: Namespace;
  private readonly locks: Namespace;
  private readonly keyring: Keyring;
  private readonly leaseTtlSeconds: number;
  private readonly operationTimeoutMs: number;
  private readonly lockPollMs: number;
  private readonly nodeName: string;
  private readonly clock: Clock;
  private readonly held = new Map<string, HeldLock>();

  constructor(opts: EtcdCertStoreOptions) {
    this.layout = clusterKeyLayout(opts.clusterName);
    this.client = opts.client;
    this.kv = opts.client.namespace(this.layout.kv);
    this.locks = opts.client.namespace(this.layout.locks);
    this.keyring = opts.keyring;
    this.leaseTtlSeconds = opts.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    this.operationTimeoutMs = opts.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.lockPollMs = opts.lockPollMs ?? DEFAULT_LOCK_POLL_MS;
    this.nodeName = opts.nodeName ?? hostname();
    this.clock = opts.clock ?? systemClock;
    if (!Number.isInteger(this.leaseTtlSeconds) || this.leaseTtlSeconds < 1) {
      throw new RangeError('leaseTtlSeconds must be a whole number of seconds, at least 1');
    }
    if (!(this.operationTimeoutMs > 0) || !(this.lockPollMs > 0)) {
      throw new RangeError('operationTimeoutMs and lockPollMs must be positive');
    }
  }

  async store(key: string, value: Buffer | string, opts: { secret?: boolean } = {}): Promise<void> {
    assertStoreKey(key);
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    const sealed = this.keyring.seal(this.layout.kv + key, bytes, opts.secret === true);
    await this.bounded(`store ${JSON.stringify(key)}`, () => this.kv.put(key).value(sealed).exec());
  }

  async load(key: string): Promise<Buffer | undefined> {
    assertStoreKey(key);
    const raw = await this.bounded(`load ${JSON.stringify(key)}`, () => this.kv.get(key).buffer());
    if (raw === null) return undefined;
    return this.keyring.open(this.layout.kv + key, raw, key);
  }

  /**
   * For watchers of `layout.kv` (replicas materializing certificates): the
   * store key and opened value of a watch event, without a second read.
   * `etcdKey` is the full key (`/acme-sidecar/<cluster>/kv/...`) or, from a
   * watch on the `kv/` namespace, the store key itself: store keys never
   * start with '/', so the two cannot be confused. Throws STORE_KEY_INVALID
   * for a key outside the store, STORE_DECRYPT_FAILED like load().
   */
  openRaw(etcdKey: Buffer | string, raw: Buffer): { key: string; value: Buffer } {
    const full = etcdKey.toString();
    const key = full.startsWith('/')
      ? full.startsWith(this.layout.kv)
        ? full.slice(this.layout.kv.length)
        : ''
      : full;
    assertStoreKey(key);
    return { key, value: this.keyring.open(this.layout.kv + key, raw, key) };
  }

  /**
   * Call at startup: proves this replica's CLUSTER_ENCRYPTION_KEY_FILE is
   * the cluster's, before anything is written with it. The first replica
   * seals a marker at `layout.keyCheck` (created only if absent, so two
   * first replicas cannot both win); every later one must open it, or
   * fails with STORE_DECRYPT_FAILED naming both key ids. Returns 'created'
   * or 'matched'.
   */
  async checkEncryptionKey(): Promise<'created' | 'matched'> {
    const key = this.layout.keyCheck;
    const marker = Buffer.from('acme-sidecar cluster key check');
    const what = 'check CLUSTER_ENCRYPTION_KEY_FILE';
    const res = await this.bounded(what, () =>
      this.client
        .if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(this.keyring.seal(key, marker, false)))
        .else(this.client.get(key))
        .commit(),
    );
    if (res.succeeded) return 'created';
    const kv = res.responses[0]?.response_range?.kvs[0];
    if (!kv) throw etcdError(what, new Error('the key check vanished while reading it'));
    const opened = this.keyring.open(key, kv.value, 'key-check');
    if (!opened.equals(marker)) {
      throw new SidecarError('STORE_DECRYPT_FAILED', 'the cluster key check holds another value');
    }
    return 'matched';
  }

  async exists(key: string): Promise<boolean> {
    assertStoreKey(key);
    return this.bounded(`exists ${JSON.stringify(key)}`, () => this.kv.get(key).exists());
  }

  async delete(key: string): Promise<void> {
    assertStoreKey(key);
    await this.bounded(`delete ${JSON.stringify(key)}`, () => this.kv.delete().key(key).exec());
  }

  /**
   * Moves the value under `corrupt/<key>.corrupt-<UTC time>`, in one
   * transaction that commits only if `key` still holds the value read (a
   * writer that fixed it meanwhile wins). The value is sealed again for its
   * new key (as a secret: a broken record may still hold a private key).
   * A value that does not open is STORE_DECRYPT_FAILED and is not moved.
   */
  async quarantine(key: string, at: Date): Promise<string | undefined> {
    assertStoreKey(key);
    const what = `keep aside ${JSON.stringify(key)}`;
    const res = await this.bounded(what, () => this.kv.get(key).exec());
    const kv = res.kvs[0];
    if (!kv) return undefined;
    const value = this.keyring.open(this.layout.kv + key, kv.value, key);
    for (let n = 0; n < 100; n++) {
      const aside = asideKey(key, at, { prefix: true, n });
      const sealed = this.keyring.seal(this.layout.kv + aside, value, true);
      const moved = await this.bounded(what, () =>
        this.kv
          .if(key, 'Mod', '==', kv.mod_revision)
          .and(aside, 'Create', '==', 0)
          .then(this.kv.put(aside).value(sealed), this.kv.delete().key(key))
          .commit(),
      );
      if (moved.succeeded) return aside;
      // Either someone changed `key` (then it is theirs to judge) or the
      // aside name is taken (try the next).
      const now = await this.bounded(what, () => this.kv.get(key).exec());
      if (now.kvs[0]?.mod_revision !== kv.mod_revision) return undefined;
    }
    throw new SidecarError('STORE_IO', `etcd: ${what}: too many aside copies in one second`);
  }

  /**
   * Names one level below `prefix` (`''`: the top level), sorted, like
   * FsCertStore: `a/b` and `a/c/d` list `a` as `['b', 'c']`. Lock keys live
   * outside `kv/`, so they are never listed.
   */
  async list(prefix: string): Promise<string[]> {
    if (prefix !== '') assertStoreKey(prefix);
    const base = prefix === '' ? '' : `${prefix}/`;
    const keys = await this.bounded(`list ${JSON.stringify(prefix)}`, () =>
      this.kv.getAll().prefix(base).keys(),
    );
    const names = new Set<string>();
    for (const k of keys) {
      const rest = k.slice(base.length);
      const name = rest.split('/', 1)[0];
      if (name) names.add(name);
    }
    return [...names].sort();
  }

  /**
   * Waits until this store holds `name`, or throws LOCK_TIMEOUT after
   * `timeoutMs` (default 5 minutes), or STORE_UNAVAILABLE when etcd cannot
   * answer. Not reentrant, like FsCertStore.
   */
  async lock(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    assertStoreKey(name);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    const startedAt = performance.now();
    const what = `lock ${JSON.stringify(name)}`;
    const lease = this.client.lease(this.leaseTtlSeconds);
    // A lease that expired (cut off from etcd for over twice the TTL) took
    // the lock with it: forget it, so unlock() does not revoke in vain.
    lease.on('lost', () => {
      if (this.held.get(name)?.lease === lease) this.held.delete(name);
    });
    try {
      const leaseId = await this.bounded(what, () => lease.grant());
      const holder = JSON.stringify({
        node: this.nodeName,
        pid: process.pid,
        created: this.clock.now().toISOString(),
        token: randomBytes(8).toString('hex'),
      });
      await waitForLock(
        name,
        async () => {
          const res = await this.bounded(what, () =>
            this.locks
              .if(name, 'Create', '==', 0)
              .then(this.locks.put(name).value(holder).lease(leaseId))
              .commit(),
          );
          return res.succeeded ? true : undefined;
        },
        { timeoutMs, pollMs: this.lockPollMs, startedAt },
      );
      const old = this.held.get(name);
      // Only if our earlier lease on this name was lost: forget it.
      if (old && old.lease !== lease) old.lease.release();
      this.held.set(name, { lease });
    } catch (err) {
      await this.dropLease(lease);
      throw err;
    }
  }

  /**
   * Releases a lock this store holds; a no-op for any other name. Never
   * throws for etcd being unreachable: the lease's keep-alive stops at once,
   * so etcd releases the lock within the lease TTL anyway.
   */
  async unlock(name: string): Promise<void> {
    assertStoreKey(name);
    const h = this.held.get(name);
    if (!h) return;
    this.held.delete(name);
    await this.dropLease(h.lease);
  }

  /** Revokes a lease (deleting its keys); if etcd cannot be reached, stops renewing it. */
  private async dropLease(lease: Lease): Promise<void> {
    try {
      await this.bounded('revoke lease', () => lease.revoke());
    } catch {
      lease.release();
    }
  }

  /**
   * Runs one etcd operation with a hard time limit and error mapping. The
   * timer only stops waiting: etcd3's own attempt deadlines end the calls.
   */
  private async bounded<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new SidecarError(
              'STORE_UNAVAILABLE',
              `etcd: ${what} did not complete within ${this.operationTimeoutMs} ms (no quorum, or no member reachable)`,
              { retryable: true },
            ),
          ),
        this.operationTimeoutMs,
      );
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      throw etcdError(what, err);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Maps etcd3's errors to coded ones. Messages carry no credentials or values. */
export function etcdError(what: string, err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  const detail = errorMessage(err);
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof GRPCUnauthenticatedError
  ) {
    return new SidecarError('STORE_UNAUTHORIZED', `etcd: ${what}: ${detail}`, { cause: err });
  }
  // A certificate etcd or we refuse: a setup problem, not an outage.
  if (/SSL routines|certificate|handshake|tlsv1 alert|sslv3 alert/i.test(detail)) {
    return new SidecarError(
      'STORE_TLS',
      `etcd: ${what}: TLS (check CLUSTER_ETCD_CA_FILE, CLUSTER_ETCD_CERT_FILE, CLUSTER_ETCD_KEY_FILE): ${detail}`,
      { cause: err },
    );
  }
  // Unavailable, deadline exceeded, an open circuit breaker ("Execution
  // prevented because the circuit breaker is open"), connection refused.
  const recoverable =
    (typeof err === 'object' && err !== null && isRecoverableError(err as Error)) ||
    /circuit breaker|UNAVAILABLE|DEADLINE|ECONNREFUSED|no leader|timed out/i.test(detail);
  if (recoverable) {
    return new SidecarError('STORE_UNAVAILABLE', `etcd: ${what}: ${detail}`, {
      retryable: true,
      cause: err,
    });
  }
  return new SidecarError('STORE_IO', `etcd: ${what}: ${detail}`, { cause: err });
}

// Moved to etcd-config.ts; exported here as before.
export {
  DEFAULT_CALL_TIMEOUT_MS,
  etcdClientOptions,
  loadKeyring,
  type EtcdStoreConfig,
} from './etcd-config.js';

export interface EtcdStoreHandle {
  readonly store: EtcdCertStore;
  /** The client, shared with the cluster coordination (election, registry, watches). */
  readonly client: Etcd3;
  /** Namespace for src/cluster/: `/acme-sidecar/<cluster>/coord/`. */
  readonly coord: Namespace;
  readonly layout: ClusterKeyLayout;
  /** The cluster key, shared with src/cluster/ to seal the values under `coord/`. */
  readonly keyring: Keyring;
  readonly nodeName: string;
  readonly leaseTtlSeconds: number;
  /** Closes the client (locks still held are released by their leases' expiry). */
  close(): void;
}

/**
 * The etcd store for a sidecar in cluster mode, with its own client. The
 * composition root (src/cluster/) calls this when CLUSTER_ETCD_ENDPOINTS is
 * set and shares `client`/`coord` with the election and registry.
 */
export function createEtcdStore(
  config: EtcdStoreConfig,
  opts: { operationTimeoutMs?: number; lockPollMs?: number } = {},
): EtcdStoreHandle {
  if (config.clusterEncryptionKeyFile === undefined) {
    throw new SidecarError(
      'CONFIG_INVALID',
      'CLUSTER_ENCRYPTION_KEY_FILE must be set with CLUSTER_ETCD_ENDPOINTS',
    );
  }
  const keyring = loadKeyring(config.clusterEncryptionKeyFile);
  const nodeName = config.clusterNodeName ?? hostname();
  const client = new Etcd3(etcdClientOptions(config));
  const store = new EtcdCertStore({
    client,
    clusterName: config.clusterName,
    keyring,
    leaseTtlSeconds: config.clusterLeaseTtlSeconds,
    nodeName,
    ...opts,
  });
  return {
    store,
    client,
    coord: client.namespace(store.layout.coord),
    layout: store.layout,
    keyring,
    nodeName,
    leaseTtlSeconds: config.clusterLeaseTtlSeconds,
    close: () => client.close(),
  };
}
