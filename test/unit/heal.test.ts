import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePrivateKey } from '../../src/acme/keys.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import type { AcmePhase, CertMeta, Phase, StoredCert } from '../../src/domain/types.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import {
  adoptablePhase,
  decide,
  type CertFacts,
  type LiveFacts,
} from '../../src/lifecycle/policy.js';
import {
  LETSENCRYPT_PRODUCTION_LIMITS,
  checkBudget,
  lostLedger,
  prune,
} from '../../src/lifecycle/rate-limits.js';
import { Reason } from '../../src/lifecycle/reasons.js';
import { RateBudget } from '../../src/reconcile/budget.js';
import { RetrySchedule } from '../../src/reconcile/retry-schedule.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { backoffKey, rateLedgerKey, storedKey } from '../../src/store/keys.js';
import {
  accountKeyKind,
  accountRecordKind,
  ariKind,
  backoffKind,
  issuersKind,
  journalKind,
  ledgerKind,
  storedCertKind,
} from '../../src/store/record-kinds.js';
import { RecordReader, type RecordKind } from '../../src/store/records.js';
import { describeBundle } from '../../src/util/x509.js';
import { type Line, recordingLogger } from '../support/reconcile.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const DAY = 24 * 3600_000;

async function storedCert(name: string, phase: Phase): Promise<StoredCert> {
  const bundle = await new SelfSignedIssuer(new FixedClock(NOW)).issue(
    { name, domains: [name], source: 'test' },
    'ecdsa-p256',
  );
  const meta = describeBundle(bundle, {
    name,
    phase,
    directoryUrl: phase === 'self-signed' ? '' : `https://${phase}.test/dir`,
    keyType: 'ecdsa-p256',
    issuedAt: NOW,
  });
  return { meta, bundle };
}

type Corruption = 'garbage' | 'truncated' | 'empty' | 'wrong shape' | 'cert/key mismatch';

function corrupt(kind: Corruption, good: Buffer, wrongShape: Buffer, mismatched?: Buffer): Buffer {
  switch (kind) {
    case 'garbage':
      return Buffer.concat([Buffer.from('\u0001{'), good.subarray(4)]);
    case 'truncated':
      return good.subarray(0, Math.floor(good.length / 2));
    case 'empty':
      return Buffer.alloc(0);
    case 'wrong shape':
      return wrongShape;
    case 'cert/key mismatch':
      return mismatched ?? good;
  }
}

describe('heal: every kind of record tells a good one from a corrupt one', () => {
  let kinds: {
    what: string;
    kind: RecordKind<unknown>;
    good: Buffer;
    wrongShape: Buffer;
    mismatched?: Buffer;
  }[];

  before(async () => {
    const a = await storedCert('a.test', 'production');
    const b = await storedCert('b.test', 'production');
    const key = await generatePrivateKey('ecdsa-p256');
    const swapped = { ...a, bundle: { ...a.bundle, privkey: b.bundle.privkey } };
    const json = (v: unknown) => Buffer.from(JSON.stringify(v));
    kinds = [
      {
        what: 'certificate',
        kind: storedCertKind('production') as RecordKind<unknown>,
        good: json(a),
        wrongShape: json({ ...a, meta: { ...a.meta, notAfter: 42 } }),
        mismatched: json(swapped),
      },
      {
        what: 'retry schedule',
        kind: backoffKind as RecordKind<unknown>,
        good: json({ attempts: 2, nextRetry: NOW.toISOString(), context: 'x' }),
        wrongShape: json({ attempts: '2' }),
      },
      {
        what: 'ARI state',
        kind: ariKind as RecordKind<unknown>,
        good: json({
          serial: 'AB',
          directoryUrl: 'https://ca.test/dir',
          checkedAt: NOW.toISOString(),
          nextCheck: NOW.toISOString(),
          window: { start: NOW.toISOString(), end: NOW.toISOString() },
        }),
        wrongShape: json({ serial: 'AB', window: 'soon' }),
      },
      {
        what: 'rate-limit ledger',
        kind: ledgerKind as RecordKind<unknown>,
        good: json({
          events: [{ at: NOW.toISOString(), kind: 'order', account: 'u', domains: ['a.test'] }],
          blocks: [],
        }),
        wrongShape: json({ events: [{ at: 'yesterday' }], blocks: [] }),
      },
      {
        what: 'order journal',
        kind: journalKind as RecordKind<unknown>,
        good: json({
          url: 'https://ca.test/order/1',
          domains: ['a.test'],
          keyType: 'ecdsa-p256',
          createdAt: NOW.toISOString(),
          privkey: key,
        }),
        wrongShape: json({ url: 'https://ca.test/order/1', domains: 'a.test' }),
      },
      {
        what: 'account',
        kind: accountRecordKind as RecordKind<unknown>,
        good: json({
          url: 'https://ca.test/acct/1',
          directoryUrl: 'https://ca.test/dir',
          createdAt: NOW.toISOString(),
        }),
        wrongShape: json({ url: 'not a url', directoryUrl: 'x', createdAt: NOW.toISOString() }),
      },
      {
        what: 'account key',
        kind: accountKeyKind as RecordKind<unknown>,
        good: Buffer.from(key),
        wrongShape: Buffer.from(a.bundle.cert),
      },
      {
        what: 'issuers',
        kind: issuersKind as RecordKind<unknown>,
        good: json({ issuers: [a.bundle.cert] }),
        wrongShape: json({ issuers: ['not a certificate'] }),
      },
    ];
  });

  it('accepts every good record', () => {
    for (const k of kinds) {
      const got = k.kind.parse(k.good);
      assert.ok(got.ok, `${k.what}: ${got.ok ? '' : got.problem}`);
    }
  });

  for (const corruption of [
    'garbage',
    'truncated',
    'empty',
    'wrong shape',
    'cert/key mismatch',
  ] as const) {
    it(`refuses every record that is ${corruption}, saying why`, () => {
      for (const k of kinds) {
        if (corruption === 'cert/key mismatch' && !k.mismatched) continue;
        const raw = corrupt(corruption, k.good, k.wrongShape, k.mismatched);
        let got;
        try {
          got = k.kind.parse(raw);
        } catch (err) {
          // The reader turns a throw into a problem too; say which kind threw.
          got = { ok: false as const, problem: `threw ${(err as Error).message}` };
        }
        assert.equal(got.ok, false, `${k.what} ${corruption} was accepted`);
        assert.ok(!got.ok && got.problem.length > 0);
      }
    });
  }

  it('names a certificate whose key does not match it as such', () => {
    const k = kinds[0]!;
    const got = k.kind.parse(k.mismatched!);
    assert.ok(!got.ok);
    assert.match(got.problem, /private key does not match the certificate/);
  });
});

describe('heal: the record reader keeps a corrupt record aside and reports it', () => {
  let root: string;
  let store: FsCertStore;
  let lines: Line[];
  let reader: RecordReader;

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'heal-'));
    store = new FsCertStore(root);
    lines = [];
    reader = new RecordReader(store, new FixedClock(NOW), recordingLogger(lines));
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('a corrupt certificate reads as missing, is renamed <file>.corrupt-<UTC time>, and is reported as STORE_CORRUPT on its certificate', async () => {
    const key = storedKey('a.test', 'production');
    await store.store(key, '{"meta": garbage');
    assert.equal(
      await reader.read(key, storedCertKind('production'), { cert: 'a.test' }),
      undefined,
    );
    assert.equal(await store.load(key), undefined);
    const files = await fs.readdir(join(root, 'certs', 'a.test'));
    assert.deepEqual(files, ['production.json.corrupt-20260601T000000Z']);
    const warn = lines.find((l) => l.msg === 'corrupt record in the state');
    assert.equal(warn?.level, 'warn');
    assert.equal(warn?.fields.code, 'STORE_CORRUPT');
    assert.equal(warn?.fields.record, key);
    const [problem, ...more] = reader.take('a.test');
    assert.deepEqual(more, []);
    assert.equal(problem?.code, 'STORE_CORRUPT');
    assert.equal(problem?.keptAs, `${key}.corrupt-20260601T000000Z`);
    assert.match(problem?.message ?? '', /certificate certs\/a\.test\/production\.json is corrupt/);
    assert.deepEqual(reader.take('a.test'), [], 'handed over once');
  });

  it('a good record is read and left alone', async () => {
    const key = storedKey('a.test', 'production');
    const good = await storedCert('a.test', 'production');
    await store.store(key, JSON.stringify(good));
    const got = await reader.read(key, storedCertKind('production'));
    assert.equal(got?.meta.serial, good.meta.serial);
    assert.deepEqual(await fs.readdir(join(root, 'certs', 'a.test')), ['production.json']);
    assert.deepEqual(lines, []);
  });

  it('in a dry run, names the corrupt record and moves nothing', async () => {
    const dry = new RecordReader(store, new FixedClock(NOW), recordingLogger(lines), {
      dryRun: true,
    });
    const key = storedKey('a.test', 'production');
    await store.store(key, 'garbage');
    const got = await dry.inspect(key, storedCertKind('production'));
    assert.equal(got.state, 'corrupt');
    assert.equal((await store.load(key))?.toString(), 'garbage');
  });

  it('a corrupt retry schedule falls back to none: the certificate is tried now', async () => {
    await store.store(backoffKey('a.test'), '{"attempts": "many"');
    const schedule = new RetrySchedule(
      {
        store,
        clock: new FixedClock(NOW),
        settings: {
          target: 'production',
          keyType: 'ecdsa-p256',
          directories: { staging: 'https://s.test/dir', production: 'https://p.test/dir' },
        },
      },
      reader,
    );
    const st = {
      name: 'a.test',
      domains: ['a.test'],
      phase: 'none' as const,
      reason: Reason.Missing,
      ready: false,
      attempts: 0,
    };
    await schedule.load(st, { name: 'a.test', domains: ['a.test'], source: 'test' });
    assert.equal(st.attempts, 0);
    assert.equal((st as { nextRetry?: string }).nextRetry, undefined);
    assert.equal(reader.take('a.test')[0]?.record, backoffKey('a.test'));
  });

  it('a corrupt rate-limit ledger counts as spent: the next order is refused until the longest window has passed', async () => {
    const url = 'https://acme-v02.api.letsencrypt.org/directory';
    await store.store(rateLedgerKey(url), '{"events": 3}');
    const budget = new RateBudget(store, new FixedClock(NOW), 'auto', { records: reader });
    await assert.rejects(budget.beforeOrder('production', url, ['a.test']), (err: Error) => {
      assert.equal((err as { code?: string }).code, 'RATE_BUDGET_EXCEEDED');
      assert.match(
        err.message,
        /the rate-limit ledger was corrupt; its budget is counted as spent/,
      );
      assert.match(err.message, /STORE_CORRUPT/);
      assert.equal((err as { retryAfter?: number }).retryAfter, 7 * 24 * 3600);
      return true;
    });
    // A renewal in the CA's window is exempt from the CA's limits, and from ours.
    await budget.beforeOrder('production', url, ['a.test'], { exempt: true });
    const aside = await fs.readdir(join(root, ...rateLedgerKey(url).split('/').slice(0, -1)));
    assert.ok(
      aside.some((n) => n.startsWith('rate-limits.json.corrupt-')),
      aside.join(),
    );
  });
});

describe('heal: the lost ledger as a pure decision', () => {
  const account = 'https://ca.test/dir';
  const request = { account, domains: ['a.test'] };
  const windows = Object.values(LETSENCRYPT_PRODUCTION_LIMITS).map((l) => l.windowMs);

  it('refuses an order at once after the loss', () => {
    const got = checkBudget(
      lostLedger(account, windows, NOW),
      request,
      LETSENCRYPT_PRODUCTION_LIMITS,
      NOW,
    );
    assert.equal(got.ok, false);
  });

  it('allows an order again once the longest window (7 days) has passed', () => {
    const later = new Date(NOW.getTime() + 7 * DAY + 1000);
    const ledger = prune(lostLedger(account, windows, NOW), LETSENCRYPT_PRODUCTION_LIMITS, later);
    assert.equal(checkBudget(ledger, request, LETSENCRYPT_PRODUCTION_LIMITS, later).ok, true);
  });

  it('still refuses a day before that', () => {
    const later = new Date(NOW.getTime() + 6 * DAY);
    assert.equal(
      checkBudget(lostLedger(account, windows, NOW), request, LETSENCRYPT_PRODUCTION_LIMITS, later)
        .ok,
      false,
    );
  });
});

describe('heal: adopting what live/ serves (decide)', () => {
  const PROD = 'https://prod.test/dir';
  const STAGING = 'https://staging.test/dir';
  const DOMAINS = ['a.test'];
  const meta = (phase: AcmePhase, over: Partial<CertMeta> = {}): CertMeta => ({
    name: 'a.test',
    phase,
    domains: DOMAINS,
    directoryUrl: phase === 'staging' ? STAGING : PROD,
    keyType: 'ecdsa-p256',
    notBefore: new Date(NOW.getTime() - 10 * DAY).toISOString(),
    notAfter: new Date(NOW.getTime() + 80 * DAY).toISOString(),
    serial: phase === 'staging' ? 'S1' : 'P1',
    chainVerified: true,
    issuedAt: NOW.toISOString(),
    ...over,
  });
  const foreign = (
    from: AcmePhase,
    over: Partial<NonNullable<LiveFacts['adoptable']>> = {},
    notAfter = new Date(NOW.getTime() + 60 * DAY).toISOString(),
  ): LiveFacts => ({
    serial: 'L1',
    notAfter,
    phase: 'foreign',
    adoptable: { from, domains: DOMAINS, keyType: 'ecdsa-p256', ...over },
  });
  const facts = (over: Partial<CertFacts>): CertFacts => ({
    name: 'a.test',
    domains: DOMAINS,
    target: 'production',
    keyType: 'ecdsa-p256',
    directories: { staging: STAGING, production: PROD },
    stored: {},
    ...over,
  });

  const cases: { name: string; facts: CertFacts; want: AcmePhase | undefined }[] = [
    {
      name: 'adopts a production certificate of our CA when the store lost every record',
      facts: facts({ live: foreign('production') }),
      want: 'production',
    },
    {
      name: 'adopts it when the stored production record is expired',
      facts: facts({
        live: foreign('production'),
        stored: { production: meta('production', { notAfter: NOW.toISOString() }) },
      }),
      want: 'production',
    },
    {
      name: 'adopts a staging certificate (it proves staging, saving that order too)',
      facts: facts({ live: foreign('staging') }),
      want: 'staging',
    },
    {
      name: 'does not adopt a staging certificate while a valid production one is stored',
      facts: facts({ live: foreign('staging'), stored: { production: meta('production') } }),
      want: undefined,
    },
    {
      name: 'does not adopt while a valid stored certificate of that phase exists',
      facts: facts({ live: foreign('production'), stored: { production: meta('production') } }),
      want: undefined,
    },
    {
      name: 'does not adopt a certificate for other hostnames',
      facts: facts({ live: foreign('production', { domains: ['b.test'] }) }),
      want: undefined,
    },
    {
      name: 'does not adopt a certificate with another key type',
      facts: facts({ live: foreign('production', { keyType: 'rsa-2048' }) }),
      want: undefined,
    },
    {
      name: 'does not adopt an expired certificate',
      facts: facts({ live: foreign('production', {}, NOW.toISOString()) }),
      want: undefined,
    },
    {
      name: 'does not adopt a certificate no configured CA is known to have issued',
      facts: facts({ live: { serial: 'L1', notAfter: NOW.toISOString(), phase: 'foreign' } }),
      want: undefined,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(adoptablePhase(c.facts, NOW), c.want);
      const action = decide(c.facts, NOW);
      if (c.want)
        assert.deepEqual(action, { kind: 'adopt', phase: c.want, reason: Reason.Adopted });
      else assert.notEqual(action.kind, 'adopt');
    });
  }

  it('after adopting, nothing is left to do: no order', () => {
    const adopted = meta('production', { serial: 'L1' });
    const action = decide(
      facts({
        live: { serial: 'L1', notAfter: adopted.notAfter, phase: 'production' },
        stored: { production: adopted },
      }),
      NOW,
    );
    assert.equal(action.kind, 'none');
  });
});
