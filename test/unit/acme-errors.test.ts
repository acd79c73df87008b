import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { classifyAcmeError } from '../../src/acme/errors.js';
import { parseRetryAfter, type AcmeProblem } from '../../src/acme/http.js';
import { WebrootResponder, assertToken } from '../../src/challenge/webroot-responder.js';
import { SidecarError } from '../../src/domain/errors.js';
import { silentLogger } from '../../src/util/log.js';

const problem = (type: string, status: number, retryAfter?: number): AcmeProblem => ({
  source: 'response',
  type: type ? `urn:ietf:params:acme:error:${type}` : '',
  detail: `detail of ${type || status}`,
  status,
  ...(retryAfter !== undefined && { retryAfter }),
});

describe('acme: classifyAcmeError', () => {
  const cases: {
    name: string;
    problems: AcmeProblem[];
    network?: string;
    err?: unknown;
    code: string;
    retryable: boolean;
    retryAfter?: number;
  }[] = [
    {
      name: 'a rateLimited problem is retryable after its Retry-After',
      problems: [problem('rateLimited', 429, 3600)],
      code: 'ACME_RATE_LIMITED',
      retryable: true,
      retryAfter: 3600,
    },
    {
      name: 'a badNonce that outlived the client retries is retryable',
      problems: [problem('badNonce', 400)],
      code: 'ACME_BAD_NONCE',
      retryable: true,
    },
    {
      name: 'unauthorized for a hostname is terminal',
      problems: [problem('unauthorized', 403)],
      code: 'ACME_UNAUTHORIZED',
      retryable: false,
    },
    {
      name: 'a rejected identifier is terminal',
      problems: [problem('rejectedIdentifier', 400)],
      code: 'ACME_UNAUTHORIZED',
      retryable: false,
    },
    {
      name: 'an invalidProfile refusal of newOrder is terminal and says which setting to change',
      problems: [problem('invalidProfile', 400)],
      code: 'ACME_PROFILE_INVALID',
      retryable: false,
    },
    {
      name: 'serverInternal is retryable',
      problems: [problem('serverInternal', 500)],
      code: 'ACME_SERVER_ERROR',
      retryable: true,
    },
    {
      name: 'a failed HTTP-01 fetch (connection) is retried later',
      problems: [problem('connection', 400)],
      code: 'ACME_REJECTED',
      retryable: true,
    },
    {
      name: 'a 503 without a problem type is a server error',
      problems: [problem('', 503)],
      code: 'ACME_SERVER_ERROR',
      retryable: true,
    },
    {
      name: 'an unknown 4xx problem is terminal',
      problems: [problem('malformed', 400)],
      code: 'ACME_REJECTED',
      retryable: false,
    },
    {
      name: 'the last problem wins',
      problems: [problem('badNonce', 400), problem('rateLimited', 429)],
      code: 'ACME_RATE_LIMITED',
      retryable: true,
    },
    {
      name: 'a refused connection means the CA is unreachable',
      problems: [],
      network: 'ECONNREFUSED',
      err: new TypeError("Cannot read properties of undefined (reading 'config')"),
      code: 'ACME_CA_UNREACHABLE',
      retryable: true,
    },
    {
      name: 'an aborted request is a timeout',
      problems: [],
      network: 'ECONNABORTED',
      code: 'ACME_TIMEOUT',
      retryable: true,
    },
    {
      name: 'an already coded error passes through',
      problems: [],
      err: new SidecarError('SELF_CHECK_FAILED', 'x', { retryable: true }),
      code: 'SELF_CHECK_FAILED',
      retryable: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const e = classifyAcmeError(c.err ?? new Error('acme-client message'), c.problems, c.network);
      assert.equal(e.code, c.code);
      assert.equal(e.retryable, c.retryable);
      assert.equal(e.retryAfter, c.retryAfter);
    });
  }
});

describe('acme: parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delay-seconds', () => assert.equal(parseRetryAfter('120', now), 120));
  it('reads an HTTP date', () =>
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 01:00:00 GMT', now), 3600));
  it('ignores garbage', () => assert.equal(parseRetryAfter('soon', now), undefined));
});

describe('challenge: tokens from the CA are untrusted', () => {
  const hostile = [
    '../../etc/passwd',
    'a/b',
    'tok en',
    'tok\0en',
    '',
    'short',
    '..',
    'é'.repeat(20),
    'x'.repeat(300),
    'abc=def=padding==xx',
    '%2e%2e%2fetc%2fpasswdxx',
  ];
  for (const t of hostile) {
    it(`refuses ${JSON.stringify(t.slice(0, 30))} before it becomes a path`, async () => {
      assert.throws(
        () => assertToken(t),
        (e: unknown) => e instanceof SidecarError && e.code === 'ACME_BAD_TOKEN',
      );
      const webroot = await mkdtemp(path.join(os.tmpdir(), 'webroot-'));
      try {
        const r = new WebrootResponder({ webroot, selfCheck: false, log: silentLogger });
        await assert.rejects(r.present('a.example.com', t, 'keyauth'), { code: 'ACME_BAD_TOKEN' });
        assert.deepEqual(await readdir(webroot), [], 'nothing written');
      } finally {
        await rm(webroot, { recursive: true, force: true });
      }
    });
  }
  it('writes a good token world-readable and removes it', async () => {
    const webroot = await mkdtemp(path.join(os.tmpdir(), 'webroot-'));
    try {
      const r = new WebrootResponder({ webroot, selfCheck: false, log: silentLogger });
      const token = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';
      await r.present('a.example.com', token, `${token}.thumb`);
      const { stat, readFile } = await import('node:fs/promises');
      const file = path.join(webroot, '.well-known', 'acme-challenge', token);
      assert.equal((await stat(file)).mode & 0o777, 0o644);
      assert.equal(await readFile(file, 'utf8'), `${token}.thumb`);
      await r.cleanupAll();
      assert.deepEqual(await readdir(path.dirname(file)), []);
    } finally {
      await rm(webroot, { recursive: true, force: true });
    }
  });
});
