import https from 'node:https';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { createHash, X509Certificate } from 'node:crypto';
import { contextTrusting } from '../../util/trust.js';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { SidecarError } from '../../domain/errors.js';
import type { Logger } from '../../util/log.js';
import { API_AXIOS_DEFAULTS, apiRequest, statusCode } from '../api-request.js';
import { parseJson, truncate } from '../json-response.js';

/**
 * A small client for the Rancher 1.x (Cattle) API: basic auth, timeouts,
 * bounded retries with backoff, every page of a collection. Errors carry
 * codes and never the credentials: axios errors hold the Authorization
 * header in their config, so none is ever wrapped or attached as a cause.
 * See ../shared/docs/rancher-api.md for the contract.
 */
export interface CattleClientOptions {
  readonly url: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly timeoutMs: number;
  /** Extra PEM roots for an https URL. */
  readonly caBundlePem?: string;
  /** SHA-256 fingerprint (lowercase hex, no colons) the server's certificate must have. */
  readonly pinSha256?: string;
  /** Attempts per request for transient failures (default 3). */
  readonly attempts?: number;
  /** Base delay of the retry backoff in ms (default 500). */
  readonly backoffMs?: number;
  readonly log: Logger;
  /** Largest number of items read from one collection, against a runaway server. */
  readonly maxItems?: number;
  /** Told of every request's outcome: HTTP status or error code (metrics). */
  readonly onRequest?: (method: string, status: string) => void;
}

export interface CattleCollection<T> {
  type: 'collection';
  data: T[];
  pagination?: { next?: string | null } | null;
}

/** Go client habit: `/v1...` is served as `/v2-beta...`, an empty path as `/v2-beta`. */
export function normalizeCattleUrl(raw: string): string {
  const u = new URL(raw);
  let p = u.pathname.replace(/\/+$/, '');
  if (p === '' || p === '/') p = '/v2-beta';
  else if (p === '/v1' || p.startsWith('/v1/')) p = '/v2-beta' + p.slice(3);
  u.pathname = p;
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/+$/, '');
}

function fingerprint(raw: Buffer): string {
  return new X509Certificate(raw).fingerprint256.replace(/:/g, '').toLowerCase();
}

/**
 * An agent that trusts exactly the pinned certificate (like `lxc remote add`
 * pins a server). The certificate is fetched first by a handshake that sends
 * no data; only if its fingerprint matches is it made a trust anchor, and the
 * fingerprint is checked again on every later connection.
 */
async function pinnedAgent(
  base: URL,
  pin: string,
  opts: CattleClientOptions,
): Promise<https.Agent> {
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect({
      host: base.hostname.replace(/^\[|\]$/g, ''),
      port: Number(base.port || 443),
      ...(isIP(base.hostname.replace(/^\[|\]$/g, '')) ? {} : { servername: base.hostname }),
      rejectUnauthorized: false,
      timeout: opts.timeoutMs,
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate(false);
      socket.destroy();
      resolve(cert.raw);
    });
    socket.once('timeout', () => socket.destroy(new Error('timeout')));
    socket.once('error', reject);
  }).catch((err: unknown) => {
    throw new SidecarError(
      'PLATFORM_UNAVAILABLE',
      `cannot reach ${base.origin} to check its certificate: ${(err as Error).message}`,
      { retryable: true },
    );
  });
  const seen = fingerprint(raw);
  if (seen !== pin) {
    throw new SidecarError(
      'PLATFORM_TLS',
      `the certificate of ${base.origin} has SHA-256 fingerprint ${seen}, not the pinned ${pin} (CATTLE_CERT_SHA256); refusing to send credentials`,
    );
  }
  const pem = new X509Certificate(raw).toString();
  return new https.Agent({
    keepAlive: true,
    // Built once (see src/acme/http.ts: `ca` would rebuild it per connection).
    secureContext: contextTrusting([pem, ...(opts.caBundlePem ? [opts.caBundlePem] : [])]),
    // The pin replaces the hostname check: it is the stronger statement.
    checkServerIdentity: (_host, cert) =>
      fingerprint(cert.raw) === pin
        ? undefined
        : new Error(`certificate fingerprint changed (CATTLE_CERT_SHA256 is ${pin})`),
  });
}

/**
 * At `limit=1000`, 200 pages is 200000 items, twice the items allowed; at a
 * server's own page size of 100 (Cattle's default), 20000: far past any
 * real environment. More pages than that is a loop or a hostile server.
 */
const MAX_PAGES = 200;

const TRANSIENT_NET = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** A page of a collection kept by `listKept`: the hash of its body and what it was mapped to. */
interface KeptPage {
  readonly hash: string;
  readonly items: readonly unknown[];
  readonly next: string | null;
}

export class CattleClient {
  readonly base: string;
  private readonly origin: string;
  private http?: Promise<AxiosInstance>;
  private project?: Promise<string>;
  /** listKept: by page link, the last body's hash and its mapped items. */
  private readonly keptPages = new Map<string, KeptPage>();
  /** listKept: by first page link, the pages last read and the items they made. */
  private readonly keptLists = new Map<
    string,
    { readonly pages: readonly KeptPage[]; readonly items: readonly unknown[] }
  >();

  constructor(private readonly opts: CattleClientOptions) {
    this.base = normalizeCattleUrl(opts.url);
    this.origin = new URL(this.base).origin;
  }

  private instance(): Promise<AxiosInstance> {
    this.http ??= (async () => {
      const base = new URL(this.base);
      let httpsAgent: https.Agent | undefined;
      if (base.protocol === 'https:') {
        httpsAgent = this.opts.pinSha256
          ? await pinnedAgent(base, this.opts.pinSha256, this.opts)
          : new https.Agent({
              keepAlive: true,
              ...(this.opts.caBundlePem && {
                secureContext: contextTrusting([this.opts.caBundlePem]),
              }),
            });
      }
      return axios.create({
        timeout: this.opts.timeoutMs,
        auth: { username: this.opts.accessKey, password: this.opts.secretKey },
        ...API_AXIOS_DEFAULTS,
        ...(httpsAgent && { httpsAgent }),
      });
    })().catch((err: unknown) => {
      this.http = undefined;
      throw err;
    });
    return this.http;
  }

  /** Resolves a collection path or an absolute link; links must stay on our server. */
  url(pathOrUrl: string): string {
    if (/^https?:\/\//.test(pathOrUrl)) {
      if (new URL(pathOrUrl).origin !== this.origin) {
        throw new SidecarError(
          'PLATFORM_BAD_RESPONSE',
          `the Rancher API sent a link to another server (${new URL(pathOrUrl).origin}); not following it with our credentials`,
        );
      }
      return pathOrUrl;
    }
    return `${this.base}/${pathOrUrl.replace(/^\/+/, '')}`;
  }

  async request<T>(method: 'GET' | 'POST' | 'PUT', pathOrUrl: string, body?: unknown): Promise<T> {
    const url = this.url(pathOrUrl);
    const what = `${method} ${new URL(url).pathname}`;
    return apiRequest(
      {
        what,
        method,
        send: async () => {
          const http = await this.instance();
          return http.request<string>({
            method,
            url,
            data: body,
            signal: AbortSignal.timeout(this.opts.timeoutMs),
          });
        },
        ok: (resp) => parseJson<T>(resp, what),
        statusError: (resp) => statusError(resp, what),
        networkError: (err) => networkError(err, what, this.opts.timeoutMs, (m) => this.scrub(m)),
      },
      this.retry(),
    );
  }

  /** How every request of this client is retried (apiRequest's options). */
  private retry() {
    return {
      attempts: this.opts.attempts,
      log: this.opts.log,
      onRequest: this.opts.onRequest,
      backoffMs: this.opts.backoffMs ?? 500,
      retryMessage: 'Rancher API request failed; retrying',
    };
  }

  /**
   * Removes the credentials, plain or as a Basic header, from a message that
   * came from elsewhere (a library's error text can quote request headers).
   */
  private scrub(message: string): string {
    const { accessKey, secretKey } = this.opts;
    const basic = Buffer.from(`${accessKey}:${secretKey}`).toString('base64');
    return message
      .split(basic)
      .join('***')
      .split(secretKey)
      .join('***')
      .replace(/(authorization"?\s*[:=]\s*"?)(basic|bearer)\s+[^\s",}]+/gi, '$1$2 ***');
  }

  get<T>(pathOrUrl: string): Promise<T> {
    return this.request<T>('GET', pathOrUrl);
  }

  /**
   * The body of a GET, hashed (SHA-256) as it arrives and left in the
   * chunks the socket read: listKept joins and decodes them only when the
   * hash is new. Read as a stream, not as one buffer (axios's
   * `arraybuffer`): with 1000 certificates that joined a 3 MB copy of the
   * certificates page every idle pass, and a full collection (Mark-Compact)
   * started inside nearly every idle pass; read this way none did
   * (`--trace-gc`), and an idle pass took 26 to 45 ms of CPU instead of 61
   * to 73 (docs/performance.md).
   */
  private getHashed(pathOrUrl: string): Promise<{ hash: string; chunks: Buffer[] }> {
    const url = this.url(pathOrUrl);
    const what = `GET ${new URL(url).pathname}`;
    let got = { hash: '', chunks: [] as Buffer[] };
    return apiRequest(
      {
        what,
        method: 'GET',
        send: async () => {
          const http = await this.instance();
          const resp = await http.request<AsyncIterable<Buffer>>({
            method: 'GET',
            url,
            responseType: 'stream',
            // Bounds the body too: axios's `timeout` stops at the headers,
            // while the signal stays on the stream and errors it when it
            // fires (a server that sends headers, then stalls: "no answer
            // within N ms"); axios's maxContentLength is enforced on the
            // stream as it is read (the 70 MB and drip rows of
            // hostile-inputs.test.ts).
            signal: AbortSignal.timeout(this.opts.timeoutMs),
          });
          const hash = createHash('sha256');
          const chunks: Buffer[] = [];
          for await (const chunk of resp.data) {
            hash.update(chunk);
            chunks.push(chunk);
          }
          got = { hash: hash.digest('hex'), chunks };
          // Only an error's body is read as text (statusError).
          const ok = resp.status >= 200 && resp.status < 300;
          return { ...resp, data: ok ? '' : Buffer.concat(chunks).toString('utf8') };
        },
        ok: () => got,
        statusError: (resp) => statusError(resp, what),
        networkError: (err) => networkError(err, what, this.opts.timeoutMs, (m) => this.scrub(m)),
      },
      this.retry(),
    );
  }

  /** Every item of a collection, following `pagination.next` to the end. */
  list<T>(collection: string, query: Record<string, string> = {}): Promise<T[]> {
    return this.readPages(collection, query, async (link) => {
      const c = checkCollection<T>(await this.get<unknown>(link), collection);
      return { items: c.data, next: nextLink(c, collection) };
    }).then((pages) => pages.flatMap((p) => p.items as T[]));
  }

  /**
   * Like `list`, each item mapped by `map` (keep only the fields used: the
   * mapped items stay in memory), and a page whose body is the same as the
   * last time (SHA-256) is neither parsed nor mapped again: its items are
   * the very same objects as before, and when every page is unchanged so
   * is the array returned. An idle daemon reads the same collection every
   * pass; this is what makes that cheap, and what lets the reconciler see
   * that nothing changed (its idle shortcut compares identities). `map`
   * must be the same function for a given collection and query.
   */
  async listKept<T>(
    collection: string,
    query: Record<string, string>,
    map: (item: unknown) => T,
  ): Promise<readonly T[]> {
    const pages = await this.readPages(collection, query, async (link) => {
      const { hash, chunks } = await this.getHashed(link);
      const kept = this.keptPages.get(link);
      if (kept?.hash === hash) return kept;
      const c = checkCollection<unknown>(
        parseJson<unknown>(
          { data: Buffer.concat(chunks).toString('utf8') } as AxiosResponse<string>,
          `GET ${collection}`,
        ),
        collection,
      );
      const page: KeptPage = { hash, items: c.data.map(map), next: nextLink(c, collection) };
      this.keptPages.set(link, page);
      return page;
    });
    const first = pages[0] as KeptPage;
    const key = this.firstLink(collection, query);
    const last = this.keptLists.get(key);
    if (last?.pages.length === pages.length && last.pages.every((p, i) => p === pages[i])) {
      return last.items as readonly T[];
    }
    const items = pages.length === 1 ? first.items : pages.flatMap((p) => p.items);
    this.keptLists.set(key, { pages, items });
    // Pages no longer part of any listing are let go.
    const inUse = new Set<KeptPage>();
    for (const l of this.keptLists.values()) for (const p of l.pages) inUse.add(p);
    for (const [link, page] of this.keptPages) if (!inUse.has(page)) this.keptPages.delete(link);
    return items as readonly T[];
  }

  private firstLink(collection: string, query: Record<string, string>): string {
    return `${collection}?${new URLSearchParams({ limit: '1000', ...query }).toString()}`;
  }

  /** Reads every page from the first link on, against loops and runaway servers. */
  private async readPages<
    P extends { readonly items: readonly unknown[]; readonly next: string | null },
  >(
    collection: string,
    query: Record<string, string>,
    read: (link: string) => Promise<P>,
  ): Promise<P[]> {
    let next: string | null = this.firstLink(collection, query);
    const pages: P[] = [];
    let count = 0;
    const maxItems = this.opts.maxItems ?? 100_000;
    // Against a server that pages forever: links may not repeat, and a
    // bounded number of pages (even empty ones) is read.
    const seen = new Set<string>();
    for (let page = 0; next; page++) {
      if (seen.has(next) || page >= MAX_PAGES) {
        throw new SidecarError(
          'PLATFORM_BAD_RESPONSE',
          `GET ${collection}: ${seen.has(next) ? 'pagination loops back to a page already read' : `more than ${MAX_PAGES} pages`}; refusing to read further`,
        );
      }
      seen.add(next);
      const p = await read(next);
      pages.push(p);
      count += p.items.length;
      if (count > maxItems) {
        throw new SidecarError(
          'PLATFORM_BAD_RESPONSE',
          `GET ${collection}: more than ${maxItems} items; refusing to read further`,
        );
      }
      next = p.next;
    }
    return pages;
  }

  /** The environment's project id (`GET <base>/projects` -> data[0].id). */
  projectId(): Promise<string> {
    this.project ??= this.list<{ id: string }>('projects')
      .then((ps) => {
        const id = ps[0]?.id;
        if (typeof id !== 'string' || !/^[A-Za-z0-9]+$/.test(id)) {
          throw new SidecarError('PLATFORM_BAD_RESPONSE', 'GET projects: no usable project id');
        }
        return id;
      })
      .catch((err: unknown) => {
        this.project = undefined;
        throw err;
      });
    return this.project;
  }
}

/** A page as parsed, checked to be a collection. */
function checkCollection<T>(c: unknown, collection: string): CattleCollection<T> {
  if (c === null || typeof c !== 'object' || !Array.isArray((c as { data?: unknown }).data)) {
    // Describe, never stringify: the body may be huge or nested deep enough to overflow the stack.
    const got = c === null ? 'null' : Array.isArray(c) ? 'an array' : typeof c;
    throw new SidecarError(
      'PLATFORM_BAD_RESPONSE',
      `GET ${collection}: expected a collection, got ${got}`,
      {
        retryable: true,
      },
    );
  }
  return c as CattleCollection<T>;
}

/** The link to the page after `c`, or null at the end. */
function nextLink(c: CattleCollection<unknown>, collection: string): string | null {
  const link: unknown = c.pagination?.next ?? null;
  if (link !== null && typeof link !== 'string') {
    throw new SidecarError(
      'PLATFORM_BAD_RESPONSE',
      `GET ${collection}: pagination.next is not a link (${typeof link})`,
    );
  }
  return link;
}

function statusError(resp: AxiosResponse<string>, what: string): SidecarError {
  let detail = '';
  try {
    const body = JSON.parse(resp.data) as Record<string, unknown>;
    detail = [
      body.code,
      body.message ?? body.detail,
      body.fieldName && `field ${String(body.fieldName)}`,
    ]
      .filter((x) => typeof x === 'string' && x)
      .join(': ');
  } catch {
    detail = truncate(resp.data, 120);
  }
  const s = resp.status;
  const code = statusCode(s);
  const hint =
    code === 'PLATFORM_UNAUTHORIZED' ? ' (check CATTLE_ACCESS_KEY and CATTLE_SECRET_KEY)' : '';
  return new SidecarError(code, `${what}: HTTP ${s}${detail ? ` ${detail}` : ''}${hint}`, {
    retryable: code === 'PLATFORM_UNAVAILABLE',
  });
}

function networkError(
  err: unknown,
  what: string,
  timeoutMs: number,
  scrub: (m: string) => string,
): SidecarError {
  const code = String((err as { code?: unknown }).code ?? '');
  const message = scrub(((err as Error).message ?? String(err)).slice(0, 300));
  if (
    code === 'ECONNABORTED' ||
    code === 'ETIMEDOUT' ||
    code === 'ERR_CANCELED' ||
    /timeout/i.test(message)
  ) {
    return new SidecarError('PLATFORM_UNAVAILABLE', `${what}: no answer within ${timeoutMs} ms`, {
      retryable: true,
    });
  }
  if (/certificate|self.signed|CERT_|fingerprint/i.test(code + message)) {
    return new SidecarError('PLATFORM_TLS', `${what}: TLS: ${message}`);
  }
  if (code === 'ERR_FR_MAX_BODY_LENGTH_EXCEEDED' || /maxContentLength/.test(message)) {
    return new SidecarError('PLATFORM_BAD_RESPONSE', `${what}: response too large`);
  }
  return new SidecarError(
    'PLATFORM_UNAVAILABLE',
    `${what}: ${TRANSIENT_NET.has(code) ? code : message}`,
    { retryable: true },
  );
}
