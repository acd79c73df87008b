import { mkdir, readdir, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import axios from 'axios';
import { SidecarError } from '../domain/errors.js';
import { sweepTempFiles, writeFileAtomic } from '../store/atomic.js';
import type { Logger } from '../util/log.js';
import { retry } from '../util/retry.js';
import type { ChallengeResponder } from './responder.js';

/**
 * RFC 8555 §8.3: a token is base64url (RFC 4648 §5) with no padding. It comes
 * from the CA, so it is checked before it becomes a file name: a broken or
 * malicious CA must not make us write outside the webroot.
 */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;

export function assertToken(token: string): void {
  if (!TOKEN.test(token)) {
    throw new SidecarError(
      'ACME_BAD_TOKEN',
      `the CA sent a challenge token that is not base64url: ${JSON.stringify(token.slice(0, 80))}`,
    );
  }
}

export interface WebrootResponderOptions {
  /** The directory nginx serves /.well-known/acme-challenge/ from (its `root`). */
  readonly webroot: string;
  /** Fetch the token before telling the CA; off only for unusual proxies. */
  readonly selfCheck: boolean;
  /** host:port to connect to instead of <domain>:80; the Host header stays the domain. */
  readonly selfCheckAddress?: string;
  readonly timeoutMs?: number;
  readonly attempts?: number;
  readonly log: Logger;
}

/** HTTP-01 by files in the webroot that the stock nginx serves. */
export class WebrootResponder implements ChallengeResponder {
  readonly dir: string;
  /** Tokens written and not yet removed, so shutdown can remove them all. */
  private readonly presented = new Set<string>();

  constructor(private readonly opts: WebrootResponderOptions) {
    this.dir = path.join(opts.webroot, '.well-known', 'acme-challenge');
  }

  async present(_domain: string, token: string, keyAuthorization: string): Promise<void> {
    assertToken(token);
    // nginx workers run as an unprivileged user: directories must be
    // traversable and token files world-readable (they are public anyway).
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    this.presented.add(token);
    // Atomic (nginx never serves half a token) but not fsynced: after a
    // crash the challenge is answered again with a new token.
    await writeFileAtomic(path.join(this.dir, token), keyAuthorization, {
      mode: 0o644,
      durable: false,
    });
  }

  async cleanup(_domain: string, token: string): Promise<void> {
    assertToken(token);
    await rm(path.join(this.dir, token), { force: true });
    this.presented.delete(token);
  }

  /**
   * At startup: tokens left by a previous run (killed before its `finally`)
   * answer nothing any more; remove the files that look like tokens.
   */
  async sweep(): Promise<string[]> {
    // Half-written tokens (killed inside writeFileAtomic) first.
    const removed = await sweepTempFiles(this.dir);
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const stale = names.filter((n) => TOKEN.test(n) && !this.presented.has(n));
    await Promise.all(stale.map((n) => rm(path.join(this.dir, n), { force: true })));
    return [...removed, ...stale];
  }

  /** Removes every token this responder still has in the webroot (shutdown). */
  async cleanupAll(): Promise<void> {
    await Promise.all([...this.presented].map((t) => this.cleanup('', t)));
  }

  /**
   * Fetches the token the way the CA will: over plain HTTP through nginx,
   * with the hostname as Host header. Fails early, with a reason an
   * operator can act on, instead of spending a failed validation at the CA.
   */
  async verify(domain: string, token: string, keyAuthorization: string): Promise<void> {
    if (!this.opts.selfCheck) return;
    assertToken(token);
    // RFC 8738 section 7 (RFC 3986 section 3.2.2): an IPv6 address is in
    // brackets in the URL and the Host header; the CA fetches it that way.
    const host = isIP(domain) === 6 ? `[${domain}]` : domain;
    const address = this.opts.selfCheckAddress ?? host;
    const url = `http://${address}/.well-known/acme-challenge/${token}`;
    const failed = (problem: string) =>
      new SidecarError(
        'SELF_CHECK_FAILED',
        `self-check of http://${host}/.well-known/acme-challenge/${token}` +
          (this.opts.selfCheckAddress ? ` via ${this.opts.selfCheckAddress}` : '') +
          ` failed: ${problem}`,
        { retryable: true },
      );
    await retry(
      async (attempt) => {
        let problem: string;
        try {
          const resp = await axios.get<string>(url, {
            headers: { Host: host },
            timeout: this.opts.timeoutMs ?? 5000,
            responseType: 'text',
            transformResponse: (d: string) => d,
            validateStatus: () => true,
            maxRedirects: 0,
            proxy: false,
          });
          if (resp.status === 200 && String(resp.data).trim() === keyAuthorization) return;
          problem =
            resp.status === 200
              ? 'it served different content than the token written (is nginx serving this WEBROOT?)'
              : `it answered HTTP ${resp.status} (is /.well-known/acme-challenge/ served from WEBROOT=${this.opts.webroot}?)`;
        } catch (err) {
          problem = `request failed: ${(err as Error).message}`;
        }
        this.opts.log.debug('self-check attempt failed', { domain, attempt, problem });
        throw failed(problem);
      },
      { attempts: this.opts.attempts ?? 3, backoff: (attempt) => 300 * attempt },
    );
  }
}
