import { KeyObject, createPrivateKey } from 'node:crypto';
import * as acme from './acme-client.js';
import type { Authorization, OrderCreateRequest } from 'acme-client/types/rfc8555.js';

/** acme-client's order: the RFC 8555 object plus its URL. */
type Order = acme.Order;
import type { ChallengeResponder } from '../challenge/responder.js';
import { challengeFor, type ChallengeType } from '../domain/challenges.js';
import {
  issuerDomainNamesOf,
  persistBaseName,
  persistRecordLine,
  persistRecordsFor,
  type PersistRecordStatus,
} from '../domain/dns-persist.js';
import { SidecarError, errorMessage } from '../domain/errors.js';
import { identifierType } from '../domain/ip-address.js';
import { ipProfileRefusal, offeredProfiles } from '../domain/profiles.js';
import type { AcmePhase, CertBundle, CertSpec, KeyType } from '../domain/types.js';
import { parseRenewalInfo, type RenewalInfoAnswer } from '../lifecycle/ari.js';
import { systemClock, type Clock } from '../lifecycle/clock.js';
import {
  accountKeyKey,
  accountLockName,
  accountRecordKey,
  orderJournalKey,
} from '../store/keys.js';
import {
  accountKeyKind,
  accountRecordKind,
  journalKind,
  type AccountRecord,
  type OrderJournal,
} from '../store/record-kinds.js';
import { RecordReader } from '../store/records.js';
import type { CertStore } from '../store/store.js';
import type { Logger } from '../util/log.js';
import { bundleFromFullchain } from '../util/x509.js';
import { createOrderCsr } from './csr.js';
import { checkProfile, directoryOf } from './directory.js';
import { classifyAcmeError } from './errors.js';
import {
  parseRetryAfter,
  usePooledNonces,
  useSharedDirectory,
  withAcmeContext,
  type AcmeCallContext,
} from './http.js';
import type { IssueOptions, Issuer } from './issuer.js';
import { generatePrivateKey } from './keys.js';
import { POLL_TIMING, pollDelayMs, pollVerdict } from './poll.js';
import { sleep, waitFor } from '../util/retry.js';

export interface AcmeIssuerOptions {
  readonly phase: AcmePhase;
  readonly directoryUrl: string;
  readonly email?: string;
  readonly eab?: { readonly kid: string; readonly hmacKey: string };
  readonly store: CertStore;
  /** HTTP-01 (the webroot, or the cluster's fan-out). */
  readonly responder: ChallengeResponder;
  /** DNS-01 (DNS_PROVIDER); unset: certificates that need it fail with DNS_PROVIDER_MISSING. */
  readonly dnsResponder?: ChallengeResponder;
  /** ACME_CHALLENGE: the challenge of certificates without a label or a wildcard. Default http-01. */
  readonly challenge?: ChallengeType;
  readonly log: Logger;
  /** Account key type; ECDSA P-256 is what every CA accepts. */
  readonly accountKeyType?: KeyType;
  /** Time for the records' `createdAt`; the system clock when not given. */
  readonly clock?: Clock;
  /** ACME_ARI: use the CA's renewalInfo and `replaces` when its directory offers them. */
  readonly ari?: boolean;
  /** Reads and validates the account and journal records; made from `store` when not given. */
  readonly records?: RecordReader;
}

/** Orders looked at when searching the CA's list for one in flight (RFC 8555 §7.1.2.1). */
const MAX_LISTED_ORDERS = 20;
const MAX_ORDER_LIST_PAGES = 5;

/**
 * RFC 8555 §6.5: a badNonce answer carries a fresh nonce and the request
 * may simply be sent again. acme-client gives up after 5 in a row; a CA
 * rejecting many nonces (Pebble's PEBBLE_WFE_NONCEREJECT=50, or a busy
 * load-balanced CA) then fails whole orders. 20 in a row at 50 % rejection
 * happens once in a million requests. (`http` is not in its typings.)
 */
function withNonceRetries(client: acme.Client): acme.Client {
  const http = (client as unknown as { http?: { maxBadNonceRetries?: number } }).http;
  if (http) http.maxBadNonceRetries = 20;
  return useSharedDirectory(usePooledNonces(withDecodedKey(client)));
}

/**
 * acme-client keeps the account key as PEM and signs each request with it,
 * so node:crypto parses the PEM again for every JWS: 0.41 ms of CPU per
 * signature with a P-256 PEM against 0.03 ms with a KeyObject (measured
 * here; about 7 requests per order, issue 15). The client's HttpClient gets the parsed
 * KeyObject instead, once; `sign()` and `createPublicKey()` (its JWK)
 * accept either.
 */
function withDecodedKey(client: acme.Client): acme.Client {
  const http = (client as unknown as { http?: { accountKey?: Buffer | string | KeyObject } }).http;
  if (http?.accountKey !== undefined && !(http.accountKey instanceof KeyObject)) {
    http.accountKey = createPrivateKey(http.accountKey);
  }
  return client;
}

/** The parts of acme-client's HttpClient (not in its typings) that ARI needs. */
interface RawHttp {
  getDirectory(): Promise<Record<string, unknown>>;
  request(
    url: string,
    method: string,
  ): Promise<{ status: number; data: unknown; headers: Record<string, unknown> }>;
}

function rawHttp(client: acme.Client): RawHttp {
  return (client as unknown as { http: RawHttp }).http;
}

/** acme-client's signed request (RFC 8555 §6.2), for POST-as-GET polls (§6.3). */
interface SignedHttp {
  signedRequest(
    url: string,
    payload: null,
    opts: { kid: string },
  ): Promise<{ status: number; data: unknown; headers: Record<string, unknown> }>;
}

function aborted(signal?: AbortSignal): void {
  if (!signal?.aborted) return;
  // A string reason says why (a cluster leader's term ended); else shutdown.
  const why = typeof signal.reason === 'string' ? signal.reason : 'shutting down';
  throw new SidecarError('ABORTED', `issuance abandoned: ${why}`);
}

/**
 * Orders certificates from one ACME CA with acme-client (RFC 8555), answering
 * HTTP-01 through a ChallengeResponder. One account per CA directory is kept
 * in the store and reused.
 */
export class AcmeIssuer implements Issuer {
  readonly phase: AcmePhase;
  readonly directoryUrl: string;
  private clientPromise?: Promise<acme.Client>;
  private readonly reader: RecordReader;
  /** dns-persist-01: the CA's issuer domain name and our account URL, once known. */
  private persistCa?: { issuerDomainName: string; accountUri: string };

  constructor(private readonly opts: AcmeIssuerOptions) {
    this.phase = opts.phase;
    this.directoryUrl = opts.directoryUrl;
    this.reader = opts.records ?? new RecordReader(opts.store, opts.clock ?? systemClock, opts.log);
  }

  async issue(
    spec: CertSpec,
    keyType: KeyType,
    signal?: AbortSignal,
    opts: IssueOptions = {},
  ): Promise<CertBundle> {
    try {
      return await this.issueOnce(spec, keyType, signal, opts);
    } catch (err) {
      // A CA that forgot us (a restarted Pebble, an account deactivated
      // elsewhere): register again with the same key, right away.
      if (!(err instanceof SidecarError) || !/accountDoesNotExist/i.test(err.message)) throw err;
      this.opts.log.warn('the CA no longer knows our account; registering again', {
        directoryUrl: this.directoryUrl,
      });
      this.clientPromise = undefined;
      this.persistCa = undefined;
      await this.opts.store.delete(accountRecordKey(this.directoryUrl));
      return this.issueOnce(spec, keyType, signal, opts);
    }
  }

  /**
   * RFC 9773 section 4: GET `<renewalInfo>/<CertID>`, unsigned. Asked of the
   * CA that issued the certificate (the CertID names its intermediate).
   * Every failure is an answer of kind `problem`, never a throw.
   */
  renewalInfo(certPem: string): Promise<RenewalInfoAnswer> {
    if (!this.opts.ari) return Promise.resolve({ kind: 'unsupported' });
    return this.askRenewalInfo(certPem);
  }

  async recognizes(certPem: string): Promise<boolean> {
    return (await this.askRenewalInfo(certPem)).kind === 'info';
  }

  private askRenewalInfo(certPem: string): Promise<RenewalInfoAnswer> {
    return withAcmeContext(async (ctx): Promise<RenewalInfoAnswer> => {
      try {
        const http = rawHttp(await this.client());
        // A directory fetch (the first question of a process) counts as one.
        const base = (await http.getDirectory()).renewalInfo;
        ctx.step = 'renewalInfo';
        if (typeof base !== 'string' || base === '') return { kind: 'unsupported' };
        // @peculiar/x509 (under ari-cert-id.ts) is loaded when first used, not before the first order.
        const { ariCertId } = await import('./ari-cert-id.js');
        const url = `${base.replace(/\/+$/, '')}/${ariCertId(certPem)}`;
        ctx.noRetry = true;
        const resp = await http.request(url, 'get');
        const header = resp.headers['retry-after'];
        const retryAfterS = parseRetryAfter(typeof header === 'string' ? header : undefined);
        const after = retryAfterS !== undefined ? { retryAfterS } : {};
        if (resp.status !== 200) {
          const detail = (resp.data as { detail?: unknown } | null)?.detail;
          return {
            kind: 'problem',
            problem: `the CA answered HTTP ${resp.status}${typeof detail === 'string' ? `: ${detail}` : ''}`,
            ...after,
          };
        }
        const parsed = parseRenewalInfo(resp.data);
        return parsed.ok
          ? { kind: 'info', info: parsed.info, ...after }
          : { kind: 'problem', problem: parsed.problem, ...after };
      } catch (err) {
        return { kind: 'problem', problem: errorMessage(this.classify(err, ctx)) };
      }
    });
  }

  private issueOnce(
    spec: CertSpec,
    keyType: KeyType,
    signal: AbortSignal | undefined,
    opts: IssueOptions,
  ): Promise<CertBundle> {
    return withAcmeContext(async (ctx) => {
      try {
        return await this.order(ctx, spec, keyType, signal, opts);
      } catch (err) {
        throw this.classify(err, ctx);
      }
    });
  }

  private async order(
    ctx: AcmeCallContext,
    spec: CertSpec,
    keyType: KeyType,
    signal: AbortSignal | undefined,
    opts: IssueOptions,
  ): Promise<CertBundle> {
    const challenge = challengeFor(spec, this.opts.challenge ?? 'http-01');
    const persist = challenge.type === 'dns-persist-01';
    const responder = challenge.type === 'dns-01' ? this.opts.dnsResponder : this.opts.responder;
    if (!responder && !persist) {
      // Before any request to the CA: nothing is ordered that cannot be validated.
      const why =
        challenge.reason === 'Wildcard'
          ? `${spec.domains.filter((d) => d.startsWith('*.')).join(', ')} is a wildcard, which only DNS-01 validates`
          : challenge.reason === 'Label'
            ? 'its io.acme-sidecar.challenge label asks for dns-01'
            : 'ACME_CHALLENGE=dns-01';
      throw new SidecarError(
        'DNS_PROVIDER_MISSING',
        `certificate ${spec.name} needs DNS-01 (${why}) and DNS_PROVIDER is not set; set DNS_PROVIDER=rfc2136, pdns or exec (docs/dns-01.md)`,
      );
    }
    ctx.step = 'account';
    const client = await this.client();
    aborted(signal);
    ctx.step = 'directory';
    await checkProfile(client, spec, this.directoryUrl);
    const { store } = this.opts;
    const journalKey = orderJournalKey(this.directoryUrl, spec.name);
    let journal = await this.resumable(ctx, client, journalKey, spec, keyType);
    let order: Order;
    if (journal) {
      order = journal.order;
    } else {
      order = await this.newOrder(ctx, client, spec, opts.replacing);
      journal = {
        order,
        record: {
          url: order.url,
          domains: [...spec.domains].sort(),
          keyType,
          ...(spec.profile !== undefined && { profile: spec.profile }),
          createdAt: (this.opts.clock ?? systemClock).now().toISOString(),
        },
      };
      await store.store(journalKey, JSON.stringify(journal.record), { secret: true });
      this.opts.log.info('order placed', { cert: spec.name, order: order.url });
    }
    if (order.status === 'pending') {
      ctx.step = 'authorization';
      const authzs = await client.getAuthorizations(order);
      if (persist) {
        await this.authorizePersist(ctx, client, authzs, spec, signal);
      } else if (challenge.type === 'dns-01' && responder) {
        await this.authorizeAll(ctx, client, authzs, responder, signal);
      } else if (responder) {
        for (const authz of authzs) {
          aborted(signal);
          await this.authorize(ctx, client, authz, responder, signal);
        }
      }
    }
    aborted(signal);
    ctx.step = 'finalize';
    let privkey = journal.record.privkey;
    if (order.status === 'pending' || order.status === 'ready' || !privkey) {
      privkey ??= await generatePrivateKey(keyType);
      // The key goes to the journal before the CSR reaches the CA: a
      // successor that finds the order valid can still use its certificate.
      await store.store(journalKey, JSON.stringify({ ...journal.record, privkey }), {
        secret: true,
      });
      const csr = await createOrderCsr(spec.domains, privkey);
      order = await client.finalizeOrder(order, csr);
    }
    if (order.status !== 'valid') {
      // A processing order (or a resumed one) is polled until issued.
      order = {
        ...(await this.poll(ctx, client, order.url, 'order', signal)),
        url: order.url,
      } as Order;
    }
    ctx.step = 'certificate';
    const fullchain = await client.getCertificate(order);
    await store.delete(journalKey);
    return bundleFromFullchain(fullchain, privkey);
  }

  /**
   * RFC 8555 section 7.4, with `replaces` (RFC 9773 section 5) when renewing
   * a certificate of this CA and the CA offers ARI. A refused replacement
   * (409 alreadyReplaced, 403, or Pebble's 500 for a serial whose DER value
   * starts with a zero byte) is placed again at once without `replaces`:
   * that order goes out without acme-client's 5xx retries, so the refusal
   * costs one request, not half a minute.
   */
  private async newOrder(
    ctx: AcmeCallContext,
    client: acme.Client,
    spec: CertSpec,
    replacing: string | undefined,
  ): Promise<Order> {
    const payload = {
      // RFC 8738 section 3: an address is an `ip` identifier, validated over
      // HTTP-01 at http://<address>/ (section 7; IPv6 in brackets).
      identifiers: spec.domains.map((value) => ({ type: identifierType(value), value })),
      // draft-ietf-acme-profiles: acme-client passes the field through to newOrder.
      ...(spec.profile !== undefined && { profile: spec.profile }),
    } as OrderCreateRequest;
    const replaces = replacing && (await this.replacesFor(client, replacing, spec.name));
    if (replaces) {
      ctx.step = 'newOrder';
      ctx.noRetry = true;
      const seen = ctx.problems.length;
      try {
        const order = await client.createOrder({ ...payload, replaces } as OrderCreateRequest);
        this.opts.log.info('order placed as an ARI replacement', { cert: spec.name, replaces });
        return order;
      } catch (err) {
        const refusal = ctx.problems[ctx.problems.length - 1];
        // No answer at all, or a rate limit: the same order without
        // `replaces` would fare no better.
        if (ctx.problems.length === seen || !refusal || refusal.status === 429) throw err;
        // The account, not the replacement, is the problem: issue() re-registers.
        if (/accountDoesNotExist|rateLimited/.test(refusal.type)) throw err;
        ctx.problems.splice(seen);
        this.opts.log.warn(
          'the CA refused the order as a replacement; placing it without replaces',
          {
            cert: spec.name,
            replaces,
            status: refusal.status,
            problem: refusal.type,
            detail: refusal.detail,
          },
        );
      } finally {
        ctx.noRetry = false;
      }
    }
    ctx.step = 'newOrder';
    const seen = ctx.problems.length;
    try {
      return await client.createOrder(payload);
    } catch (err) {
      const refusal =
        ctx.problems.length > seen ? await this.ipRefusal(client, spec, ctx) : undefined;
      throw refusal ?? err;
    }
  }

  /**
   * A refused newOrder for a certificate with IP addresses: the coded
   * ACME_IP_REFUSED that names the profile to set, when the refusal
   * is about the addresses (Let's Encrypt issues them only under
   * `shortlived`); else undefined.
   */
  private async ipRefusal(
    client: acme.Client,
    spec: CertSpec,
    ctx: AcmeCallContext,
  ): Promise<SidecarError | undefined> {
    const addresses = spec.domains.filter((d) => identifierType(d) === 'ip');
    if (addresses.length === 0) return undefined;
    const offered = offeredProfiles(await directoryOf(client).catch(() => undefined));
    return ipProfileRefusal(
      ctx.problems[ctx.problems.length - 1],
      spec,
      addresses,
      offered,
      this.directoryUrl,
    );
  }

  /** The CertID for `replaces`, when ARI is on and the CA offers it; else undefined. */
  private async replacesFor(
    client: acme.Client,
    certPem: string,
    name: string,
  ): Promise<string | undefined> {
    if (!this.opts.ari) return undefined;
    try {
      const dir = await rawHttp(client).getDirectory();
      if (typeof dir.renewalInfo !== 'string') return undefined;
      return (await import('./ari-cert-id.js')).ariCertId(certPem);
    } catch (err) {
      this.opts.log.warn('cannot name the certificate this order replaces', {
        cert: name,
        error: errorMessage(err),
      });
      return undefined;
    }
  }

  /**
   * An order for exactly these hostnames and key type that a previous
   * attempt left in flight and the CA still considers workable, or
   * undefined (the journal is then dropped and a new order is placed).
   */
  private async resumable(
    ctx: AcmeCallContext,
    client: acme.Client,
    journalKey: string,
    spec: CertSpec,
    keyType: KeyType,
  ): Promise<{ order: Order; record: OrderJournal } | undefined> {
    const { store, log } = this.opts;
    const got = await this.reader.inspect(journalKey, journalKind, { cert: spec.name });
    // Safe default for a corrupt journal (kept aside): an order may be in
    // flight that we no longer know of; look for it at the CA first.
    if (got.state === 'corrupt')
      return this.findOrderInFlight(ctx, client, journalKey, spec, keyType);
    if (got.state === 'missing') return undefined;
    const record = got.value;
    const wanted = [...spec.domains].sort().join(',');
    const sameOrder =
      record.url.startsWith(new URL(this.directoryUrl).origin + '/') &&
      [...record.domains].sort().join(',') === wanted &&
      record.keyType === keyType &&
      record.profile === spec.profile;
    let order: Order | undefined;
    if (sameOrder) {
      ctx.step = 'resumeOrder';
      order = await client.getOrder({ url: record.url } as unknown as Order).catch(() => undefined);
    }
    const workable =
      order &&
      (order.status === 'pending' ||
        order.status === 'ready' ||
        ((order.status === 'processing' || order.status === 'valid') && !!record.privkey));
    if (!order || !workable) {
      await store.delete(journalKey);
      return undefined;
    }
    log.info('resuming the order a previous attempt left in flight', {
      cert: spec.name,
      order: record.url,
      status: order.status,
    });
    return { order, record };
  }

  /**
   * The journal was lost: RFC 8555 §7.1.2.1, the account's `orders` list,
   * searched (newest first, a bounded number) for an order for exactly
   * these names that can still be finished without the lost key (pending or
   * ready). Found: it is journalled again and resumed. A CA that keeps no
   * list (Let's Encrypt does not) or has none: undefined, a new order.
   */
  private async findOrderInFlight(
    ctx: AcmeCallContext,
    client: acme.Client,
    journalKey: string,
    spec: CertSpec,
    keyType: KeyType,
  ): Promise<{ order: Order; record: OrderJournal } | undefined> {
    const { store, log } = this.opts;
    const seen = ctx.problems.length;
    try {
      ctx.step = 'listOrders';
      const account = (await client.updateAccount({})) as { orders?: unknown };
      if (typeof account.orders !== 'string') {
        log.info('the CA keeps no list of orders; placing a new one', { cert: spec.name });
        return undefined;
      }
      const api = rawApi(client);
      const urls: string[] = [];
      let next: string | undefined = account.orders;
      for (let page = 0; next && page < MAX_ORDER_LIST_PAGES; page++) {
        const resp = await api.apiRequest(next, null, [200]);
        const list = (resp.data as { orders?: unknown } | null)?.orders;
        if (Array.isArray(list))
          urls.push(...list.filter((u): u is string => typeof u === 'string'));
        next = nextLink(resp.headers.link);
      }
      const wanted = [...spec.domains].sort().join(',');
      for (const url of urls.slice(-MAX_LISTED_ORDERS).reverse()) {
        const order = await client.getOrder({ url } as unknown as Order);
        const names = order.identifiers
          .map((i) => i.value)
          .sort()
          .join(',');
        const profile = (order as { profile?: unknown }).profile;
        if (names !== wanted || (spec.profile !== undefined && profile !== spec.profile)) continue;
        if (order.status !== 'pending' && order.status !== 'ready') continue;
        const record: OrderJournal = {
          url,
          domains: [...spec.domains].sort(),
          keyType,
          ...(spec.profile !== undefined && { profile: spec.profile }),
          createdAt: (this.opts.clock ?? systemClock).now().toISOString(),
        };
        await store.store(journalKey, JSON.stringify(record), { secret: true });
        log.info('found an order in flight at the CA for these names; resuming it', {
          cert: spec.name,
          order: url,
          status: order.status,
        });
        return { order, record };
      }
      log.info('no order in flight at the CA for these names; placing a new one', {
        cert: spec.name,
        looked: Math.min(urls.length, MAX_LISTED_ORDERS),
      });
      return undefined;
    } catch (err) {
      // The search is a courtesy to the CA; its failure must not stop the order.
      ctx.problems.splice(seen);
      log.warn('could not search the CA for an order in flight; placing a new one', {
        cert: spec.name,
        error: errorMessage(err),
      });
      return undefined;
    }
  }

  /**
   * RFC 8555 section 8.4: every authorization over DNS-01 at once. All TXT
   * values go out first, so a wildcard and its apex (one record name, two
   * values) are both there when the CA looks, and the propagation waits
   * overlap instead of adding up. Each value is removed afterwards, also
   * after a failure.
   */
  private async authorizeAll(
    ctx: AcmeCallContext,
    client: acme.Client,
    authzs: readonly Authorization[],
    responder: ChallengeResponder,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const work: {
      domain: string;
      authzUrl: string;
      challenge: Authorization['challenges'][number];
    }[] = [];
    for (const authz of authzs) {
      if (authz.status === 'valid') continue;
      const domain = authz.identifier.value;
      const challenge = authz.challenges.find((c) => c.type === 'dns-01');
      if (!challenge) {
        throw new SidecarError('ACME_REJECTED', `the CA offered no dns-01 challenge for ${domain}`);
      }
      // acme-client's getAuthorizations adds the URL the object came from.
      work.push({ domain, authzUrl: (authz as Authorization & { url: string }).url, challenge });
    }
    const presented: typeof work = [];
    try {
      ctx.step = 'present';
      for (const w of work) {
        aborted(signal);
        const keyAuthorization = await client.getChallengeKeyAuthorization(w.challenge);
        presented.push(w);
        await responder.present(w.domain, w.challenge.token, keyAuthorization);
      }
      ctx.step = 'selfCheck';
      await Promise.all(
        work.map(async (w) =>
          responder.verify(
            w.domain,
            w.challenge.token,
            await client.getChallengeKeyAuthorization(w.challenge),
          ),
        ),
      );
      aborted(signal);
      ctx.step = 'challenge';
      for (const w of work) {
        if (w.challenge.status === 'pending') await client.completeChallenge(w.challenge);
      }
      // RFC 8555 §7.5.1: each authorization says when the CA is done, polled
      // as HTTP-01's are (poll.ts: Retry-After, else a short first wait).
      await Promise.all(
        work.map((w) => this.poll(ctx, client, w.authzUrl, 'authorization', signal)),
      );
    } finally {
      for (const w of presented) {
        await responder.cleanup(w.domain, w.challenge.token).catch((err: unknown) => {
          this.opts.log.warn('could not remove a DNS-01 TXT value', {
            domain: w.domain,
            error: errorMessage(err),
          });
        });
      }
    }
  }

  /**
   * dns-persist-01 (draft-ietf-acme-dns-persist section 3): nothing to
   * present and no token; the operator's standing TXT record answers. Each
   * pending authorization's challenge is POSTed `{}` (RFC 8555 section
   * 7.5.1) and polled. A refusal becomes DNS_PERSIST_RECORD_MISSING naming
   * the record to set, with the CA's own words.
   */
  private async authorizePersist(
    ctx: AcmeCallContext,
    client: acme.Client,
    authzs: readonly Authorization[],
    spec: CertSpec,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    for (const authz of authzs) {
      if (authz.status === 'valid') continue;
      aborted(signal);
      const domain = authz.identifier.value;
      const challenge = authz.challenges.find((c) => (c.type as string) === 'dns-persist-01');
      if (!challenge) {
        throw new SidecarError(
          'ACME_REJECTED',
          `the CA offered no dns-persist-01 challenge for ${domain} (it offered ${authz.challenges.map((c) => c.type).join(', ') || 'none'}); choose another ACME_CHALLENGE or label for ${spec.name}`,
        );
      }
      const fields = challenge as unknown as Readonly<Record<string, unknown>>;
      const issuers = issuerDomainNamesOf(fields);
      if (!issuers?.[0]) {
        throw new SidecarError(
          'ACME_BAD_RESPONSE',
          `the CA's dns-persist-01 challenge for ${domain} has no usable issuer-domain-names (draft-ietf-acme-dns-persist section 3.1: 1 to 10 domain names)`,
        );
      }
      // The challenge names the account URL the CA will compare (RFC 8657
      // accounturi); it is ours, as the CA spells it.
      const accountUri =
        typeof fields.accounturi === 'string' && fields.accounturi !== ''
          ? fields.accounturi
          : client.getAccountUrl();
      this.persistCa = { issuerDomainName: issuers[0], accountUri };
      const wildcard = (authz as { wildcard?: unknown }).wildcard === true;
      const [record] = persistRecordsFor(
        [domain, ...spec.domains.filter((d) => persistBaseName(d) === domain)],
        this.persistCa,
      );
      const authzUrl = (authz as Authorization & { url: string }).url;
      try {
        if (challenge.status === 'pending') {
          ctx.step = 'challenge';
          await client.completeChallenge(challenge);
        }
        await this.poll(ctx, client, authzUrl, 'authorization', signal);
        this.opts.log.info('dns-persist-01 authorization valid', {
          cert: spec.name,
          domain: wildcard ? `*.${domain}` : domain,
          record: record?.name,
        });
      } catch (err) {
        if (err instanceof SidecarError && err.code !== 'ACME_VALIDATION_FAILED') throw err;
        const said = await this.challengeError(client, authzUrl, 'dns-persist-01');
        if (said === undefined && !(err instanceof Error && /is invalid/.test(err.message))) {
          throw err;
        }
        throw new SidecarError(
          'DNS_PERSIST_RECORD_MISSING',
          `certificate ${spec.name}: the CA found no usable dns-persist-01 record for ${wildcard ? `*.${domain}` : domain}; set once, in the zone of ${domain}: ${record ? persistRecordLine(record) : ''}${said ? ` (the CA said: ${said})` : ''}`,
          { retryable: true },
        );
      }
    }
  }

  /** The `error.detail` of an authorization's challenge of one type, read again after a failure. */
  private async challengeError(
    client: acme.Client,
    authzUrl: string,
    type: string,
  ): Promise<string | undefined> {
    try {
      const http = (client as unknown as { http: SignedHttp }).http;
      const resp = await http.signedRequest(authzUrl, null, { kid: client.getAccountUrl() });
      const challenges = (resp.data as { challenges?: unknown } | null)?.challenges;
      if (!Array.isArray(challenges)) return undefined;
      for (const c of challenges as { type?: unknown; error?: { detail?: unknown } }[]) {
        if (c.type === type && typeof c.error?.detail === 'string') return c.error.detail;
      }
      return undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The dns-persist-01 records for these names at this CA (one per base
   * name, `policy=wildcard` when a wildcard of it is among them), for
   * check-config and /status. The issuer domain name is the one the CA's
   * last challenge named, else the first of the directory's
   * `meta.caaIdentities` (RFC 8555 section 7.1.1; CAs take the draft's
   * issuer-domain-names from there); the account URL is ours (registered
   * now if it is not yet: the record names it).
   */
  async expectedPersistRecords(domains: readonly string[]): Promise<PersistRecordStatus[]> {
    if (!this.persistCa) {
      const client = await this.client();
      const dir = (await directoryOf(client)) as { meta?: { caaIdentities?: unknown } } | undefined;
      const issuers = issuerDomainNamesOf({ 'issuer-domain-names': dir?.meta?.caaIdentities });
      if (!issuers?.[0]) {
        throw new SidecarError(
          'ACME_BAD_RESPONSE',
          `${this.directoryUrl} lists no meta.caaIdentities, so the issuer domain name of a dns-persist-01 record is not known before an order; the first order's error names the record`,
        );
      }
      this.persistCa ??= { issuerDomainName: issuers[0], accountUri: client.getAccountUrl() };
    }
    const ca = this.persistCa;
    const byBase = new Map<string, string[]>();
    for (const d of domains) {
      const base = persistBaseName(d);
      byBase.set(base, [...(byBase.get(base) ?? []), d.trim().toLowerCase()]);
    }
    return persistRecordsFor(domains, ca).map((r) => ({
      ...r,
      phase: this.phase,
      domains: [...new Set(byBase.get(r.name.slice(r.name.indexOf('.') + 1)) ?? [])].sort(),
    }));
  }

  /** RFC 8555 §7.5.1 and §8.3: answer one authorization over HTTP-01. */
  private async authorize(
    ctx: AcmeCallContext,
    client: acme.Client,
    authz: Authorization,
    responder: ChallengeResponder,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    // CAs reuse authorizations that are still valid (Pebble does half the time).
    if (authz.status === 'valid') return;
    const domain = authz.identifier.value;
    const challenge = authz.challenges.find((c) => c.type === 'http-01');
    if (!challenge) {
      throw new SidecarError('ACME_REJECTED', `the CA offered no http-01 challenge for ${domain}`);
    }
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    try {
      ctx.step = 'present';
      await responder.present(domain, challenge.token, keyAuthorization);
      ctx.step = 'selfCheck';
      await responder.verify(domain, challenge.token, keyAuthorization);
      // A resumed order's challenge may already be in the CA's hands.
      if (challenge.status === 'pending') {
        ctx.step = 'challenge';
        await client.completeChallenge(challenge);
      }
      // RFC 8555 §7.5.1: the authorization says when the CA is done.
      // (acme-client's getAuthorizations adds the URL the object came from.)
      const authzUrl = (authz as Authorization & { url: string }).url;
      await this.poll(ctx, client, authzUrl, 'authorization', signal);
    } finally {
      // The CA may fetch the token several times until it is valid; only now
      // is it safe to remove.
      await responder.cleanup(domain, challenge.token).catch((err: unknown) => {
        this.opts.log.warn('could not remove challenge token', { error: String(err) });
      });
    }
  }

  /**
   * Polls an authorization (after its challenge) or an order (after
   * finalize) with POST-as-GET until the CA is done with it (RFC 8555
   * §7.5.1, §7.4): after the CA's Retry-After when it sends one, else a
   * short first wait and then doubling (poll.ts). An `invalid` object ends
   * the wait with an error; its problem document was recorded by the HTTP
   * adapter, so classify() names the CA's reason.
   */
  private async poll(
    ctx: AcmeCallContext,
    client: acme.Client,
    url: string,
    kind: 'authorization' | 'order',
    signal: AbortSignal | undefined,
  ): Promise<Record<string, unknown>> {
    const http = (client as unknown as { http: SignedHttp }).http;
    const kid = client.getAccountUrl();
    const step = kind === 'authorization' ? 'pollAuthorization' : 'pollOrder';
    const started = performance.now();
    await sleep(pollDelayMs(1, ctx.last?.retryAfterS), signal);
    return waitFor(
      async () => {
        aborted(signal);
        ctx.step = step;
        const resp = await http.signedRequest(url, null, { kid });
        const body = (resp.data ?? {}) as Record<string, unknown>;
        if (resp.status !== 200) {
          const detail = typeof body.detail === 'string' ? `: ${body.detail}` : '';
          throw new Error(`polling the ${kind} answered HTTP ${resp.status}${detail}`);
        }
        const verdict = pollVerdict(kind, body.status);
        if (verdict === 'done') return body;
        if (verdict === 'wait') return undefined;
        throw new Error(`the ${kind} is ${String(body.status)}`);
      },
      {
        // Poll n (1-based) is done; the wait before poll n+1.
        intervalMs: (n) => pollDelayMs(n + 1, ctx.last?.retryAfterS),
        timeout: {
          ms: POLL_TIMING.deadlineMs,
          startedAt: started,
          error: () =>
            new SidecarError(
              'ACME_TIMEOUT',
              `the CA did not finish the ${kind} within ${POLL_TIMING.deadlineMs / 1000} s (${url})`,
            ),
        },
        ...(signal && { signal }),
      },
    );
  }

  /**
   * One account load shared by every concurrent issuance. It runs in its own
   * call context and rejects with an already-classified error, so each
   * waiting issuance sees the real cause.
   */
  private client(): Promise<acme.Client> {
    this.clientPromise ??= withAcmeContext(async (ctx) => {
      ctx.step = 'account';
      try {
        return await this.loadClient(ctx);
      } catch (err) {
        throw this.classify(err, ctx);
      }
    }).catch((err: unknown) => {
      this.clientPromise = undefined;
      throw err;
    });
    return this.clientPromise;
  }

  /** A failure in words a person can act on, naming the setting that points at this CA. */
  private classify(err: unknown, ctx: AcmeCallContext): SidecarError {
    return classifyAcmeError(err, ctx.problems, ctx.networkError, {
      ...(ctx.last && { last: ctx.last }),
      directorySetting: `ACME_${this.phase.toUpperCase()}_DIRECTORY_URL`,
    });
  }

  /**
   * The account, under the account lock: in cluster mode (and between two
   * processes on one STATE_DIR) a recovery or registration happens once,
   * and whoever waited reads what the first one wrote.
   */
  private async loadClient(ctx: AcmeCallContext): Promise<acme.Client> {
    const { store } = this.opts;
    const lock = accountLockName(this.directoryUrl);
    await store.lock(lock);
    try {
      return await this.loadClientLocked(ctx);
    } finally {
      await store.unlock(lock);
    }
  }

  private async loadClientLocked(ctx: AcmeCallContext): Promise<acme.Client> {
    const { store, log } = this.opts;
    const now = () => (this.opts.clock ?? systemClock).now();
    const keyKey = accountKeyKey(this.directoryUrl);
    const recordKey = accountRecordKey(this.directoryUrl);
    const keyGot = await this.reader.inspect(keyKey, accountKeyKind);
    let key: string;
    let newKey = false;
    if (keyGot.state === 'ok') {
      key = keyGot.value;
    } else {
      // No usable key (corrupt, kept aside; or missing): nothing can prove
      // the old account is ours, so a new key and a new account. A record
      // left beside it names an account of the old key: kept aside too.
      const orphan = await store.exists(recordKey);
      if (keyGot.state === 'corrupt' || orphan) {
        const keptAs = orphan ? await store.quarantine(recordKey, now()) : undefined;
        log.warn('no usable ACME account key: registering a new account with a new key', {
          code: 'STORE_CORRUPT',
          directoryUrl: this.directoryUrl,
          record: keyKey,
          ...(keptAs && { accountRecordKeptAs: keptAs }),
        });
      }
      key = await generatePrivateKey(this.opts.accountKeyType ?? 'ecdsa-p256');
      await store.store(keyKey, key, { secret: true });
      newKey = true;
    }
    const base = {
      directoryUrl: this.directoryUrl,
      accountKey: key,
      // RFC 8555 §7.5.1: poll politely; acme-client's 5 s minimum is slow for short orders.
      backoffAttempts: 12,
      backoffMin: 1000,
      backoffMax: 10000,
      ...(this.opts.eab && {
        externalAccountBinding: { kid: this.opts.eab.kid, hmacKey: this.opts.eab.hmacKey },
      }),
    };
    if (!newKey) {
      const recordGot = await this.reader.inspect(recordKey, accountRecordKind);
      if (recordGot.state === 'ok' && recordGot.value.email === this.opts.email) {
        return withNonceRetries(new acme.Client({ ...base, accountUrl: recordGot.value.url }));
      }
      if (recordGot.state === 'corrupt') {
        // Safe default: the key still names the account; RFC 8555 §7.3.1
        // finds it again without registering a second one.
        const found = await this.findAccount(ctx, base);
        if (found) return found;
      }
    }
    const client = withNonceRetries(new acme.Client(base));
    await client.createAccount({
      termsOfServiceAgreed: true,
      ...(this.opts.email && { contact: [`mailto:${this.opts.email}`] }),
    });
    const url = client.getAccountUrl();
    await this.saveAccount(url);
    log.info('ACME account registered', { directoryUrl: this.directoryUrl, account: url });
    return client;
  }

  /** RFC 8555 §7.3.1 onlyReturnExisting: the account of this key, or undefined if the CA knows none. */
  private async findAccount(
    ctx: AcmeCallContext,
    base: ConstructorParameters<typeof acme.Client>[0],
  ): Promise<acme.Client | undefined> {
    const client = withNonceRetries(new acme.Client(base));
    const seen = ctx.problems.length;
    try {
      await client.createAccount({ onlyReturnExisting: true });
    } catch (err) {
      const refusal = ctx.problems
        .slice(seen)
        .find((p) => /accountDoesNotExist/.test(p.type ?? ''));
      if (!refusal) throw err;
      ctx.problems.splice(seen);
      this.opts.log.warn('the CA knows no account for our key; registering one', {
        directoryUrl: this.directoryUrl,
      });
      return undefined;
    }
    const url = client.getAccountUrl();
    await this.saveAccount(url);
    this.opts.log.info('ACME account found again with its key (onlyReturnExisting)', {
      directoryUrl: this.directoryUrl,
      account: url,
    });
    return client;
  }

  private async saveAccount(url: string): Promise<void> {
    const record: AccountRecord = {
      url,
      directoryUrl: this.directoryUrl,
      ...(this.opts.email && { email: this.opts.email }),
      createdAt: (this.opts.clock ?? systemClock).now().toISOString(),
    };
    await this.opts.store.store(
      accountRecordKey(this.directoryUrl),
      JSON.stringify(record, null, 2),
    );
  }
}

/** acme-client's signed request helper (not in its typings), for the orders list. */
interface RawApi {
  apiRequest(
    url: string,
    payload: null,
    validStatusCodes: number[],
  ): Promise<{ data: unknown; headers: Record<string, unknown> }>;
}

function rawApi(client: acme.Client): RawApi {
  return (client as unknown as { api: RawApi }).api;
}

/** The `rel="next"` target of a Link header (RFC 8288), if any. */
function nextLink(header: unknown): string | undefined {
  const values = Array.isArray(header) ? header : [header];
  for (const v of values) {
    if (typeof v !== 'string') continue;
    for (const part of v.split(',')) {
      const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
      if (m?.[1]) return m[1];
    }
  }
  return undefined;
}
