/**
 * The webhook hook: POSTs the deployment event as JSON, retried with backoff.
 * Its URL may carry a token: only {@link redactUrl}'s form reaches a log or
 * an error.
 */
import axios from 'axios';
import { webhookUrlProblem } from '../domain/endpoints.js';
import { errorMessage } from '../domain/errors.js';
import type { Logger } from '../util/log.js';
import { retry, type Backoff } from '../util/retry.js';
import type { CertificateEvent, HookOutcome } from './hooks.js';

/**
 * The webhook URL as it may appear in logs and errors: no userinfo, query or
 * fragment (where tokens usually hide). Unparseable input is not echoed.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return '[invalid URL]';
  }
}

export interface WebhookOptions {
  /** Per request. */
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly backoff: Backoff;
  readonly log: Logger;
  /** Use the environment's HTTP(S)_PROXY; false: connect directly whatever it says. */
  readonly useProxy: boolean;
}

/**
 * POSTs the event (as hooks.ts's `payload` built it: only the fields to
 * send), retrying network errors, timeouts, 408, 429 and 5xx with
 * exponential backoff and jitter. Other 4xx answers are final: the receiver
 * understood and refused, and asking again will not change that. Never throws.
 */
export async function postWebhook(
  url: string,
  ev: CertificateEvent,
  opts: WebhookOptions,
): Promise<HookOutcome> {
  const started = performance.now();
  const safeUrl = redactUrl(url);
  const problem = webhookUrlProblem(url);
  if (problem !== undefined) {
    return {
      hook: 'webhook',
      ok: false,
      attempts: 0,
      error: `invalid webhook URL ${safeUrl}: ${problem}`,
      durationMs: 0,
    };
  }
  const body = JSON.stringify(ev);
  let made = 0;
  const outcome = (error?: string): HookOutcome => ({
    hook: 'webhook',
    ok: error === undefined,
    attempts: made,
    ...(error !== undefined && { error }),
    durationMs: Math.round(performance.now() - started),
  });
  try {
    await retry(
      async (attempt) => {
        made = attempt;
        let status: number;
        try {
          const resp = await axios.post(url, body, {
            timeout: opts.timeoutMs,
            headers: { 'Content-Type': 'application/json', 'User-Agent': 'acme-sidecar' },
            responseType: 'text',
            transformResponse: (d: unknown) => d,
            validateStatus: () => true,
            maxRedirects: 0,
            maxContentLength: 64 * 1024,
            // axios reads HTTP(S)_PROXY itself unless told not to.
            ...(opts.useProxy ? {} : { proxy: false as const }),
          });
          status = resp.status;
        } catch (err) {
          // axios messages do not carry the URL, but make sure of it.
          throw new Error(`POST ${safeUrl} failed: ${errorMessage(err).split(url).join(safeUrl)}`);
        }
        if (status >= 200 && status < 300) return;
        throw Object.assign(new Error(`${safeUrl} answered HTTP ${status}`), {
          retryable: status >= 500 || status === 408 || status === 429,
        });
      },
      {
        attempts: opts.attempts,
        backoff: opts.backoff,
        onRetry: (err, attempt) =>
          opts.log.debug('webhook attempt failed', {
            cert: ev.name,
            attempt,
            error: errorMessage(err),
          }),
      },
    );
    return outcome();
  } catch (err) {
    return outcome(errorMessage(err));
  }
}
