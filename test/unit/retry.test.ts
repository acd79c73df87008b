import assert from 'node:assert/strict';
import { SidecarError } from '../../src/domain/errors.js';
import {
  backoffMs,
  isRetryable,
  retry,
  retryAfterMs,
  waitFor,
  type Backoff,
  type RetryOptions,
} from '../../src/util/retry.js';

/** A fake monotonic clock that sleeping moves forward: no test waits for real. */
function fakeTime() {
  let t = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep: async (ms: number) => {
      slept.push(ms);
      t += ms;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

const transient = () => new SidecarError('PLATFORM_UNAVAILABLE', 'down', { retryable: true });
const final = () => new SidecarError('PLATFORM_REJECTED', 'refused');

/** A function that fails with the given errors in turn, then resolves 'ok'. */
function failing(errors: unknown[]) {
  const calls: number[] = [];
  const fn = async (attempt: number) => {
    calls.push(attempt);
    const e = errors[attempt - 1];
    if (e !== undefined) throw e;
    return 'ok';
  };
  return { fn, calls };
}

describe('retry', () => {
  const cases: {
    name: string;
    errors: unknown[];
    opts?: Partial<RetryOptions>;
    result: string | RegExp;
    calls: number;
    slept: number[];
  }[] = [
    {
      name: 'returns the first success without waiting',
      errors: [],
      result: 'ok',
      calls: 1,
      slept: [],
    },
    {
      name: 'retries a retryable coded error and returns the later success',
      errors: [transient(), transient()],
      result: 'ok',
      calls: 3,
      slept: [100, 200],
    },
    {
      name: 'throws the last error once the attempts are spent',
      errors: [transient(), transient(), transient()],
      result: /down/,
      calls: 3,
      slept: [100, 200],
    },
    {
      name: 'does not retry a coded error marked not retryable',
      errors: [final()],
      result: /refused/,
      calls: 1,
      slept: [],
    },
    {
      name: 'retries an error without a retryable marker',
      errors: [new Error('plain')],
      result: 'ok',
      calls: 2,
      slept: [100],
    },
    {
      name: 'does not retry what the caller predicate refuses',
      errors: [transient()],
      opts: { retryIf: () => false },
      result: /down/,
      calls: 1,
      slept: [],
    },
    {
      name: 'does not retry a not retryable error even if the predicate would',
      errors: [final()],
      opts: { retryIf: () => true },
      result: /refused/,
      calls: 1,
      slept: [],
    },
    {
      name: 'waits for the retry after hint when it is longer than the backoff',
      errors: [
        new SidecarError('ACME_RATE_LIMITED', 'slow down', { retryable: true, retryAfter: 3 }),
      ],
      result: 'ok',
      calls: 2,
      slept: [3000],
    },
    {
      name: 'keeps the backoff when the retry after hint is shorter',
      errors: [
        new SidecarError('ACME_RATE_LIMITED', 'slow down', { retryable: true, retryAfter: 0 }),
      ],
      result: 'ok',
      calls: 2,
      slept: [100],
    },
    {
      name: 'gives up with the last error when the next wait would pass the deadline',
      errors: [transient(), transient(), transient()],
      opts: { deadlineMs: 250, attempts: 10 },
      result: /down/,
      calls: 2,
      slept: [100],
    },
    {
      name: 'does not start a wait past the deadline for a retry after hint',
      errors: [new SidecarError('ACME_RATE_LIMITED', 'later', { retryable: true, retryAfter: 60 })],
      opts: { deadlineMs: 10_000 },
      result: /later/,
      calls: 1,
      slept: [],
    },
    {
      name: 'uses a backoff function when one is given',
      errors: [transient(), transient()],
      opts: { backoff: (n) => 300 * n },
      result: 'ok',
      calls: 3,
      slept: [300, 600],
    },
    {
      name: 'makes one attempt when asked for none',
      errors: [transient()],
      opts: { attempts: 0 },
      result: /down/,
      calls: 1,
      slept: [],
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const time = fakeTime();
      const { fn, calls } = failing(c.errors);
      const run = retry(fn, {
        attempts: 3,
        backoff: { baseMs: 100, jitter: [1, 1] },
        sleep: time.sleep,
        now: time.now,
        ...c.opts,
      });
      if (typeof c.result === 'string') assert.equal(await run, c.result);
      else await assert.rejects(run, c.result);
      assert.deepEqual(
        calls,
        Array.from({ length: c.calls }, (_, i) => i + 1),
      );
      assert.deepEqual(time.slept, c.slept);
    });
  }

  it('tells onRetry of every wait with the error, the attempt and the delay', async () => {
    const time = fakeTime();
    const seen: [string, number, number][] = [];
    const { fn } = failing([transient(), transient()]);
    await retry(fn, {
      attempts: 3,
      backoff: { baseMs: 10, jitter: [1, 1] },
      sleep: time.sleep,
      now: time.now,
      onRetry: (err, attempt, delay) => seen.push([(err as Error).message, attempt, delay]),
    });
    assert.deepEqual(seen, [
      ['down', 1, 10],
      ['down', 2, 20],
    ]);
  });

  it('throws ABORTED with the last error as cause when the signal aborts during a wait', async () => {
    const ac = new AbortController();
    const { fn, calls } = failing([transient(), transient()]);
    const err = await retry(fn, {
      attempts: 3,
      signal: ac.signal,
      sleep: async () => ac.abort(),
    }).catch((e: unknown) => e);
    assert.ok(err instanceof SidecarError);
    assert.equal(err.code, 'ABORTED');
    assert.match((err.cause as Error).message, /down/);
    assert.deepEqual(calls, [1]);
  });

  it('starts no attempt when the signal has already aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    const { fn, calls } = failing([]);
    await assert.rejects(retry(fn, { attempts: 3, signal: ac.signal }), { code: 'ABORTED' });
    assert.deepEqual(calls, []);
  });

  it('ends a real wait early when the signal aborts', async () => {
    const ac = new AbortController();
    const started = performance.now();
    setTimeout(() => ac.abort(), 20);
    const { fn } = failing([transient(), transient()]);
    await assert.rejects(
      retry(fn, { attempts: 3, backoff: { baseMs: 60_000 }, signal: ac.signal }),
      { code: 'ABORTED' },
    );
    assert.ok(performance.now() - started < 5_000);
  });
});

describe('backoffMs', () => {
  const cases: { name: string; attempt: number; b: Backoff; random: number; ms: number }[] = [
    {
      name: 'is the base after the first attempt',
      attempt: 1,
      b: { baseMs: 300, jitter: [1, 1] },
      random: 0.5,
      ms: 300,
    },
    {
      name: 'doubles per attempt by default',
      attempt: 3,
      b: { baseMs: 300, jitter: [1, 1] },
      random: 0.5,
      ms: 1200,
    },
    {
      name: 'grows by the given factor',
      attempt: 3,
      b: { baseMs: 100, factor: 3, jitter: [1, 1] },
      random: 0.5,
      ms: 900,
    },
    {
      name: 'stops at the cap',
      attempt: 10,
      b: { baseMs: 150, maxMs: 2000, jitter: [1, 1] },
      random: 0.5,
      ms: 2000,
    },
    {
      name: 'spreads a quarter either way by default, low end',
      attempt: 2,
      b: { baseMs: 100 },
      random: 0,
      ms: 150,
    },
    {
      name: 'spreads a quarter either way by default, middle',
      attempt: 2,
      b: { baseMs: 100 },
      random: 0.5,
      ms: 200,
    },
    {
      name: 'draws equal jitter between half and all of the wait',
      attempt: 1,
      b: { baseMs: 1000, jitter: [0.5, 1] },
      random: 0.5,
      ms: 750,
    },
    {
      name: 'applies the jitter after the cap',
      attempt: 20,
      b: { baseMs: 1000, maxMs: 60_000, jitter: [0.5, 1] },
      random: 0,
      ms: 30_000,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(backoffMs(c.attempt, { ...c.b, random: () => c.random }), c.ms);
    });
  }
});

describe('isRetryable and retryAfterMs', () => {
  const cases: { name: string; err: unknown; retryable: boolean; afterMs?: number }[] = [
    { name: 'a retryable coded error is retried', err: transient(), retryable: true },
    { name: 'a coded error is not retried by default', err: final(), retryable: false },
    { name: 'a plain error is retried', err: new Error('x'), retryable: true },
    {
      name: 'any object saying retryable false is not retried',
      err: { retryable: false },
      retryable: false,
    },
    { name: 'a string is retried', err: 'boom', retryable: true },
    { name: 'null is retried', err: null, retryable: true },
    {
      name: 'a retry after hint in seconds becomes milliseconds',
      err: new SidecarError('ACME_RATE_LIMITED', 'x', { retryable: true, retryAfter: 2.5 }),
      retryable: true,
      afterMs: 2500,
    },
    { name: 'a negative retry after hint is ignored', err: { retryAfter: -1 }, retryable: true },
    {
      name: 'a retry after hint that is not a number is ignored',
      err: { retryAfter: '5' },
      retryable: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(isRetryable(c.err), c.retryable);
      assert.equal(retryAfterMs(c.err), c.afterMs);
    });
  }
});

describe('waitFor', () => {
  it('returns the first value a check gives, pausing between checks', async () => {
    const time = fakeTime();
    const v = await waitFor(async (n) => (n === 3 ? 'there' : undefined), {
      intervalMs: 200,
      sleep: time.sleep,
      now: time.now,
    });
    assert.equal(v, 'there');
    assert.deepEqual(time.slept, [200, 200]);
  });

  it('pauses by check number when the interval is a function', async () => {
    const time = fakeTime();
    await waitFor(async (n) => (n === 5 ? true : undefined), {
      intervalMs: (n) => Math.min(150 * 2 ** (n - 1), 500),
      sleep: time.sleep,
      now: time.now,
    });
    assert.deepEqual(time.slept, [150, 300, 500, 500]);
  });

  it('throws the timeout error after a last check on the deadline', async () => {
    const time = fakeTime();
    let checks = 0;
    await assert.rejects(
      waitFor(
        async () => {
          checks++;
          return undefined;
        },
        {
          intervalMs: 200,
          timeout: { ms: 500, error: () => new Error('still held') },
          sleep: time.sleep,
          now: time.now,
        },
      ),
      /still held/,
    );
    assert.deepEqual(time.slept, [200, 200, 100]);
    assert.equal(checks, 4);
  });

  it('counts the timeout from startedAt when given', async () => {
    const time = fakeTime();
    const startedAt = time.now();
    time.advance(1000);
    let checks = 0;
    await assert.rejects(
      waitFor(
        async () => {
          checks++;
          return undefined;
        },
        {
          intervalMs: 200,
          timeout: { ms: 500, error: () => new Error('late'), startedAt },
          sleep: time.sleep,
          now: time.now,
        },
      ),
      /late/,
    );
    assert.equal(checks, 1);
    assert.deepEqual(time.slept, []);
  });

  it('ends with the error a check throws', async () => {
    await assert.rejects(
      waitFor(
        async () => {
          throw new Error('rejected');
        },
        { intervalMs: 1 },
      ),
      /rejected/,
    );
  });

  it('throws ABORTED when the signal aborts while it pauses', async () => {
    const ac = new AbortController();
    await assert.rejects(
      waitFor(async () => undefined, {
        intervalMs: 10,
        signal: ac.signal,
        sleep: async () => ac.abort(),
      }),
      { code: 'ABORTED' },
    );
  });
});
