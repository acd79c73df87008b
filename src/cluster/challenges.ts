import axios from 'axios';
import type { Namespace } from 'etcd3';
import { SidecarError, errorMessage } from '../domain/errors.js';
import type { ChallengeResponder } from '../challenge/responder.js';
import { assertToken, type WebrootResponder } from '../challenge/webroot-responder.js';
import type { Clock } from '../lifecycle/clock.js';
import { CHALLENGES_PREFIX } from '../store/keys.js';
import type { Logger } from '../util/log.js';
import { waitFor } from '../util/retry.js';
import { fanoutVerdict, replicasToCheck, type NodeRecord, type TokenCheck } from './decisions.js';
import { PrefixMirror, type MirrorEntry } from './prefix-mirror.js';
import type { NodeRegistry } from './registry.js';
import type { CoordSealer } from './sealed-coord.js';

export { CHALLENGES_PREFIX };

interface PendingChallenge {
  readonly domain: string;
  readonly keyAuthorization: string;
}

/** Fetches one replica's copy of a token through its nginx. */
export type TokenFetcher = (
  node: NodeRecord,
  domain: string,
  token: string,
  keyAuthorization: string,
) => Promise<TokenCheck>;

export interface ClusterResponderOptions {
  readonly namespace: Namespace;
  readonly registry: NodeRegistry;
  /** Seals the token's value for its key (sealed-coord.ts). */
  readonly sealer: CoordSealer;
  readonly ttlSeconds: number;
  /** SELF_CHECK: off skips the replica check (unusual proxies only). */
  readonly selfCheck: boolean;
  /** How long every replica gets to serve a token. Default: the lease TTL plus 10 s. */
  readonly timeoutMs?: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly fetch?: TokenFetcher;
}

/**
 * HTTP-01 in cluster mode (RFC 8555 §8.3): the CA may reach any load
 * balancer, so the token goes to etcd (`challenges/<token>`, under this
 * node's lease) and every replica's ChallengeMirror writes it into its own
 * webroot. `verify` tells the CA to look only once every live replica's
 * nginx serves it.
 */
export class ClusterResponder implements ChallengeResponder {
  private readonly fetch: TokenFetcher;

  constructor(private readonly opts: ClusterResponderOptions) {
    this.fetch = opts.fetch ?? fetchThroughNginx;
  }

  async present(domain: string, token: string, keyAuthorization: string): Promise<void> {
    assertToken(token);
    const value: PendingChallenge = { domain, keyAuthorization };
    const key = `${CHALLENGES_PREFIX}${token}`;
    await this.opts.registry
      .currentLease()
      .put(key)
      .value(this.opts.sealer.seal(key, JSON.stringify(value)));
  }

  async cleanup(_domain: string, token: string): Promise<void> {
    assertToken(token);
    await this.opts.namespace.delete().key(`${CHALLENGES_PREFIX}${token}`);
  }

  /**
   * Polls every replica seen within the lease TTL until all serve the
   * token, or fails with the ones that do not. A replica that dies meanwhile
   * drops out of the list once its heartbeat is older than the TTL.
   */
  async verify(domain: string, token: string, keyAuthorization: string): Promise<void> {
    if (!this.opts.selfCheck) return;
    assertToken(token);
    const { clock, ttlSeconds } = this.opts;
    const ttlMs = ttlSeconds * 1000;
    const started = clock.now();
    const deadline = new Date(started.getTime() + (this.opts.timeoutMs ?? ttlMs + 10_000));
    const ok = new Map<string, TokenCheck>();
    await waitFor(
      async () => {
        const required = replicasToCheck(await this.opts.registry.list(), clock.now(), ttlMs);
        const pending = required.filter((n) => !ok.has(n.name));
        const results = await Promise.all(
          pending.map((n) => this.fetch(n, domain, token, keyAuthorization)),
        );
        for (const r of results) if (r.ok) ok.set(r.node, r);
        const checks = [...ok.values(), ...results.filter((r) => !r.ok)];
        const verdict = fanoutVerdict(
          required.map((n) => n.name),
          checks,
          clock.now(),
          deadline,
        );
        if (verdict.kind === 'ready') {
          this.opts.log.debug('every replica serves the token', {
            domain,
            replicas: required.map((n) => n.name),
            ms: clock.now().getTime() - started.getTime(),
          });
          return true;
        }
        if (verdict.kind === 'failed') {
          throw new SidecarError(
            'CLUSTER_FANOUT_FAILED',
            `not every replica serves the challenge token for ${domain}: ` +
              verdict.missing.map((m) => `${m.node} (${m.detail ?? 'no answer'})`).join(', '),
            { retryable: true },
          );
        }
        return undefined;
      },
      // The deadline is the verdict's (on the injected clock).
      { intervalMs: 200 },
    );
  }
}

/** GET http://<selfCheckAddress>/.well-known/acme-challenge/<token> with Host: <domain>. */
export const fetchThroughNginx: TokenFetcher = async (node, domain, token, keyAuthorization) => {
  if (!node.selfCheckAddress) {
    return { node: node.name, ok: false, detail: 'registered without SELF_CHECK_ADDRESS' };
  }
  try {
    const resp = await axios.get<string>(
      `http://${node.selfCheckAddress}/.well-known/acme-challenge/${token}`,
      {
        headers: { Host: domain },
        timeout: 2000,
        responseType: 'text',
        transformResponse: (d: string) => d,
        validateStatus: () => true,
        maxRedirects: 0,
        proxy: false,
      },
    );
    if (resp.status === 200 && String(resp.data).trim() === keyAuthorization) {
      return { node: node.name, ok: true };
    }
    return {
      node: node.name,
      ok: false,
      detail: resp.status === 200 ? 'serves other content' : `HTTP ${resp.status}`,
    };
  } catch (err) {
    return { node: node.name, ok: false, detail: errorMessage(err) };
  }
};

export interface ChallengeMirrorOptions {
  readonly namespace: Namespace;
  /** This node's webroot (the same responder a single sidecar uses). */
  readonly local: WebrootResponder;
  /** Opens each token's value; one not sealed for its key is refused (sealed-coord.ts). */
  readonly sealer: CoordSealer;
  readonly log: Logger;
  /** Full resync period, besides the watch. Default 10 s. */
  readonly resyncMs?: number;
}

/**
 * On every replica: keeps this node's webroot holding exactly the pending
 * tokens in etcd. Writes are atomic and world-readable (WebrootResponder);
 * a token is removed when its key goes (cleanup, or the publishing node's
 * lease expired). Only values sealed with the cluster key for their token's
 * key are served: a token planted by anyone else who can write to etcd
 * never reaches nginx.
 */
export class ChallengeMirror {
  private readonly mirrored = new Set<string>();
  private readonly mirror: PrefixMirror;

  constructor(private readonly opts: ChallengeMirrorOptions) {
    this.mirror = new PrefixMirror({
      ...opts,
      prefix: CHALLENGES_PREFIX,
      messages: {
        failed: 'challenge mirror failed; retrying at the next event or resync',
        watchFailed: 'challenge watch failed; watching again',
        cannotWatch: 'could not watch challenges yet',
      },
      onPut: ({ key, value }) => this.write(key, value),
      onDelete: (token) => this.remove(token),
      onResync: (entries) => this.resync(entries),
    });
  }

  start(): Promise<void> {
    return this.mirror.start();
  }

  async stop(): Promise<void> {
    await this.mirror.stop();
    await Promise.all([...this.mirrored].map((t) => this.remove(t)));
  }

  private async resync(entries: readonly MirrorEntry[]): Promise<void> {
    const present = new Set<string>();
    for (const { key: token, value } of entries) {
      present.add(token);
      if (!this.mirrored.has(token)) await this.write(token, value);
    }
    for (const token of [...this.mirrored]) if (!present.has(token)) await this.remove(token);
  }

  private async write(token: string, value: string): Promise<void> {
    let c: PendingChallenge;
    try {
      c = JSON.parse(value) as PendingChallenge;
      if (typeof c.keyAuthorization !== 'string' || typeof c.domain !== 'string') throw new Error();
      // The key authorization is "<token>.<thumbprint>" (RFC 8555 §8.1).
      if (!c.keyAuthorization.startsWith(`${token}.`)) throw new Error();
    } catch {
      this.opts.log.warn('ignoring a malformed challenge entry', { token: token.slice(0, 80) });
      return;
    }
    // assertToken (inside present) refuses anything that is not base64url.
    await this.opts.local.present(c.domain, token, c.keyAuthorization);
    this.mirrored.add(token);
  }

  private async remove(token: string): Promise<void> {
    this.mirrored.delete(token);
    await this.opts.local.cleanup('', token).catch((err: unknown) => {
      this.opts.log.warn('could not remove a challenge token', { error: errorMessage(err) });
    });
  }
}
