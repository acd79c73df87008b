import assert from 'node:assert/strict';
import type { AxiosResponse } from 'axios';
import { SidecarError, type ErrorCode } from '../../src/domain/errors.js';
import { apiRequest, statusCode } from '../../src/platform/api-request.js';
import { waitForLock } from '../../src/store/lock-wait.js';
import type { LogFields, Logger } from '../../src/util/log.js';

function recordingLogger(lines: [string, LogFields | undefined][]): Logger {
  const log: Logger = {
    error: (m, f) => lines.push([m, f]),
    warn: (m, f) => lines.push([m, f]),
    info: (m, f) => lines.push([m, f]),
    debug: (m, f) => lines.push([m, f]),
    child: () => log,
  };
  return log;
}

const answer = (status: number, data = '{}') => ({ status, data }) as AxiosResponse<string>;

describe('statusCode', () => {
  const cases: [string, number, ErrorCode][] = [
    ['401 is unauthorized', 401, 'PLATFORM_UNAUTHORIZED'],
    ['403 is unauthorized', 403, 'PLATFORM_UNAUTHORIZED'],
    ['404 is not found', 404, 'PLATFORM_NOT_FOUND'],
    ['429 is unavailable, to be retried', 429, 'PLATFORM_UNAVAILABLE'],
    ['500 is unavailable, to be retried', 500, 'PLATFORM_UNAVAILABLE'],
    ['503 is unavailable, to be retried', 503, 'PLATFORM_UNAVAILABLE'],
    ['400 is rejected', 400, 'PLATFORM_REJECTED'],
    ['409 is rejected', 409, 'PLATFORM_REJECTED'],
  ];
  for (const [name, status, code] of cases) {
    it(name, () => assert.equal(statusCode(status), code));
  }
});

describe('apiRequest', () => {
  /** A request whose tries answer the given statuses (or throw) in turn. */
  function run(answers: (number | Error)[], attempts = 3) {
    const lines: [string, LogFields | undefined][] = [];
    const outcomes: string[] = [];
    let tries = 0;
    const result = apiRequest(
      {
        what: 'GET /x',
        method: 'GET',
        send: async () => {
          const a = answers[tries++] ?? 200;
          if (a instanceof Error) throw a;
          return answer(a);
        },
        ok: () => 'ok',
        statusError: (resp) =>
          new SidecarError(statusCode(resp.status), `GET /x: HTTP ${resp.status}`, {
            retryable: statusCode(resp.status) === 'PLATFORM_UNAVAILABLE',
          }),
        networkError: (err) =>
          new SidecarError('PLATFORM_UNAVAILABLE', `GET /x: ${(err as Error).message}`, {
            retryable: true,
          }),
      },
      {
        attempts,
        backoffMs: 1,
        log: recordingLogger(lines),
        onRequest: (_m, s) => outcomes.push(s),
        retryMessage: 'API request failed; retrying',
      },
    );
    return { result, lines, outcomes, tries: () => tries };
  }

  it('returns the value of a 2xx answer at once', async () => {
    const r = run([200]);
    assert.equal(await r.result, 'ok');
    assert.equal(r.tries(), 1);
    assert.deepEqual(r.outcomes, ['200']);
  });

  it('retries a 503 and logs the retry with the request, code and attempt', async () => {
    const r = run([503, 200]);
    assert.equal(await r.result, 'ok');
    assert.deepEqual(r.outcomes, ['503', '200']);
    assert.deepEqual(r.lines, [
      [
        'API request failed; retrying',
        { request: 'GET /x', code: 'PLATFORM_UNAVAILABLE', error: 'GET /x: HTTP 503', attempt: 1 },
      ],
    ]);
  });

  it('does not retry a 400', async () => {
    const r = run([400, 200]);
    await assert.rejects(r.result, { code: 'PLATFORM_REJECTED' });
    assert.equal(r.tries(), 1);
    assert.deepEqual(r.lines, []);
  });

  it('maps a network error and tells metrics its code', async () => {
    const r = run([new Error('ECONNRESET'), new Error('ECONNRESET')], 2);
    await assert.rejects(r.result, /GET \/x: ECONNRESET/);
    assert.deepEqual(r.outcomes, ['PLATFORM_UNAVAILABLE', 'PLATFORM_UNAVAILABLE']);
  });

  it('passes a coded error of the send through unmapped and untold to metrics', async () => {
    const coded = new SidecarError('PLATFORM_TLS', 'pin mismatch');
    const r = run([coded]);
    await assert.rejects(r.result, (err) => err === coded);
    assert.deepEqual(r.outcomes, []);
  });
});

describe('waitForLock', () => {
  it('returns what take returned once the lock is free', async () => {
    let n = 0;
    const got = await waitForLock('a/b', async () => (++n === 3 ? 'held' : undefined), {
      timeoutMs: 10_000,
      pollMs: 1,
      startedAt: performance.now(),
    });
    assert.equal(got, 'held');
  });

  it('throws a retryable LOCK_TIMEOUT naming the lock and the timeout', async () => {
    const err = await waitForLock('a/b', async () => undefined, {
      timeoutMs: 20,
      pollMs: 5,
      startedAt: performance.now(),
    }).catch((e: unknown) => e);
    assert.ok(err instanceof SidecarError);
    assert.equal(err.code, 'LOCK_TIMEOUT');
    assert.equal(err.retryable, true);
    assert.equal(err.message, 'lock "a/b" still held by another holder after 20 ms');
  });
});
