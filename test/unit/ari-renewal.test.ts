import assert from 'node:assert/strict';
import type { CertMeta } from '../../src/domain/types.js';
import {
  ariCheck,
  ariCheckDue,
  ariFirstCheckAt,
  ariRenewAt,
  dueByAriWindow,
  nextAriRecord,
  type AriRecord,
  type AriSubject,
  type RenewalInfoAnswer,
} from '../../src/lifecycle/ari.js';
import { decide, type Action, type CertFacts } from '../../src/lifecycle/policy.js';
import { Reason } from '../../src/lifecycle/reasons.js';

const H = 3600_000;
const DAY = 24 * H;
const NOW = new Date('2026-06-01T00:00:00Z');
const at = (ms: number) => new Date(NOW.getTime() + ms);
const PROD_URL = 'https://prod.test/dir';
const DOMAINS = ['a.example.com'];

const P: CertMeta = {
  name: 'a.example.com',
  phase: 'production',
  domains: DOMAINS,
  directoryUrl: PROD_URL,
  keyType: 'ecdsa-p384',
  notBefore: at(-10 * DAY).toISOString(),
  notAfter: at(80 * DAY).toISOString(),
  serial: 'P1',
  chainVerified: true,
  issuedAt: at(-10 * DAY).toISOString(),
};

function facts(over: Partial<CertFacts> = {}): CertFacts {
  return {
    name: 'a.example.com',
    domains: DOMAINS,
    target: 'production',
    keyType: 'ecdsa-p384',
    directories: { staging: 'https://staging.test/dir', production: PROD_URL },
    stored: {
      production: P,
      staging: { ...P, phase: 'staging', serial: 'S1', directoryUrl: 'https://staging.test/dir' },
    },
    live: { serial: 'P1', notAfter: P.notAfter, phase: 'production' },
    ...over,
  };
}

describe('ARI: the renewal decision takes the CA window when there is one', () => {
  const lifetimeRenewAt = at(50 * DAY); // two thirds of 90 days after notBefore
  const cases: { name: string; facts: CertFacts; want: Action }[] = [
    {
      name: 'uses the lifetime rule when the CA gave no window',
      facts: facts(),
      want: { kind: 'none', reason: Reason.Valid, renewAt: lifetimeRenewAt },
    },
    {
      name: 'waits for an ARI time in the future, and says it came from ARI',
      facts: facts({ ari: { production: { serial: 'P1', renewAt: at(5 * DAY) } } }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: at(5 * DAY), renewSource: 'ari' },
    },
    {
      name: 'renews at the next pass when the ARI time has passed (a revocation: a window in the past)',
      facts: facts({ ari: { production: { serial: 'P1', renewAt: at(-H) } } }),
      want: { kind: 'issue', phase: 'production', reason: Reason.NearingExpiry },
    },
    {
      name: 'renews by ARI long before the lifetime rule would',
      facts: facts({ ari: { production: { serial: 'P1', renewAt: at(-1) } } }),
      want: { kind: 'issue', phase: 'production', reason: Reason.NearingExpiry },
    },
    {
      name: 'ignores an ARI time drawn for another certificate (the one it replaced)',
      facts: facts({ ari: { production: { serial: 'OLD', renewAt: at(-H) } } }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: lifetimeRenewAt },
    },
    {
      name: 'waits for an ARI time later than the lifetime rule when the CA says so',
      facts: facts({ ari: { production: { serial: 'P1', renewAt: at(60 * DAY) } } }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: at(60 * DAY), renewSource: 'ari' },
    },
    {
      name: 'renews earlier than the window when RENEW_BEFORE_DAYS comes first',
      facts: facts({
        renewBeforeDays: 45,
        ari: { production: { serial: 'P1', renewAt: at(40 * DAY) } },
      }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: at(35 * DAY) },
    },
    {
      name: 'caps a RENEW_BEFORE_DAYS over half the lifetime at half, still before the window',
      facts: facts({
        renewBeforeDays: 85,
        ari: { production: { serial: 'P1', renewAt: at(40 * DAY) } },
      }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: at(35 * DAY) },
    },
    {
      name: 'lets a RENEW_BEFORE_DAYS at or above the lifetime yield to the window',
      facts: facts({
        renewBeforeDays: 90,
        ari: { production: { serial: 'P1', renewAt: at(40 * DAY) } },
      }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: at(40 * DAY), renewSource: 'ari' },
    },
    {
      name: 'keeps the window when RENEW_BEFORE_DAYS comes later',
      facts: facts({
        renewBeforeDays: 30,
        ari: { production: { serial: 'P1', renewAt: at(5 * DAY) } },
      }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: at(5 * DAY), renewSource: 'ari' },
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(decide(c.facts, NOW), c.want));
});

const SUBJECT: AriSubject = {
  serial: 'P1',
  directoryUrl: PROD_URL,
  notBefore: new Date(P.notBefore),
  notAfter: new Date(P.notAfter),
};
const WINDOW = { start: at(40 * DAY), end: at(42 * DAY) };
const info = (window = WINDOW, retryAfterS?: number): RenewalInfoAnswer & { kind: 'info' } => ({
  kind: 'info',
  info: { window, explanationUrl: 'https://ca.test/why' },
  ...(retryAfterS !== undefined && { retryAfterS }),
});
const half = () => 0.5;

describe('ARI: the record kept beside the certificate', () => {
  it('draws a time inside a new window and asks again after the Retry-After', () => {
    const u = nextAriRecord(undefined, SUBJECT, info(WINDOW, 3600), NOW, half);
    assert.equal(u.choice, 'drawn');
    assert.equal(u.record.renewAt, at(41 * DAY).toISOString());
    assert.equal(u.record.nextCheck, at(H).toISOString());
    assert.equal(u.record.explanationUrl, 'https://ca.test/why');
    assert.equal(u.warning, undefined);
  });

  it('keeps the drawn time while the CA suggests the same window', () => {
    const first = nextAriRecord(undefined, SUBJECT, info(), NOW, () => 0.1).record;
    const again = nextAriRecord(first, SUBJECT, info(), at(6 * H), () => 0.9);
    assert.equal(again.choice, 'kept');
    assert.equal(again.record.renewAt, first.renewAt);
    assert.equal(again.record.nextCheck, at(12 * H).toISOString());
  });

  it('draws again when the window moves', () => {
    const first = nextAriRecord(undefined, SUBJECT, info(), NOW, () => 0.1).record;
    const moved = { start: at(-2 * H), end: at(-H) };
    const again = nextAriRecord(first, SUBJECT, info(moved), NOW, half);
    assert.equal(again.choice, 'drawn');
    assert.equal(again.record.renewAt, at(-1.5 * H).toISOString());
  });

  it('draws again for a new certificate even with an equal window', () => {
    const first = nextAriRecord(undefined, SUBJECT, info(), NOW, () => 0.1).record;
    const again = nextAriRecord(first, { ...SUBJECT, serial: 'P2' }, info(), NOW, half);
    assert.equal(again.choice, 'drawn');
    assert.equal(again.record.serial, 'P2');
  });

  it('clamps a Retry-After of a second to a minute and a week to six hours', () => {
    assert.equal(
      nextAriRecord(undefined, SUBJECT, info(WINDOW, 1), NOW, half).record.nextCheck,
      at(60_000).toISOString(),
    );
    assert.equal(
      nextAriRecord(undefined, SUBJECT, info(WINDOW, 7 * 86400), NOW, half).record.nextCheck,
      at(6 * H).toISOString(),
    );
  });

  it('drops the window on a malformed answer and warns once, not at every check', () => {
    const good = nextAriRecord(undefined, SUBJECT, info(), NOW, half).record;
    const bad: RenewalInfoAnswer & { kind: 'problem' } = {
      kind: 'problem',
      problem: 'the answer is not a JSON object',
    };
    const first = nextAriRecord(good, SUBJECT, bad, NOW, half);
    assert.equal(first.warning, 'the answer is not a JSON object');
    assert.equal(first.record.renewAt, undefined);
    assert.equal(ariRenewAt(first.record, SUBJECT), undefined);
    assert.equal(first.record.nextCheck, at(6 * H).toISOString());
    const second = nextAriRecord(first.record, SUBJECT, bad, at(6 * H), half);
    assert.equal(second.warning, undefined);
  });
});

describe('ARI: when to ask the CA again', () => {
  const record: AriRecord = {
    serial: 'P1',
    directoryUrl: PROD_URL,
    checkedAt: NOW.toISOString(),
    nextCheck: at(H).toISOString(),
  };
  const cases: [string, AriRecord | undefined, Date, boolean][] = [
    ['asks when nothing is known', undefined, NOW, true],
    ['does not ask before the Retry-After has passed', record, at(H - 1), false],
    ['asks once it has passed', record, at(H), true],
    ['asks for a new certificate at once', { ...record, serial: 'OLD' }, NOW, true],
    ['asks when the CA changed', { ...record, directoryUrl: 'https://x.test/d' }, NOW, true],
    ['asks when the next check is unreadable', { ...record, nextCheck: 'soon' }, NOW, true],
  ];
  for (const [name, prev, now, want] of cases)
    it(name, () => assert.equal(ariCheckDue(prev, SUBJECT, now), want));
});

describe('ARI: a certificate this process has just issued is asked about later', () => {
  const S = 1000;
  const lived = (ms: number) => ({ notBefore: NOW, notAfter: at(ms) });
  const firstCases: [string, { notBefore: Date; notAfter: Date }, Date][] = [
    ['90 days: 6 h after issuance (the Retry-After clamp)', lived(90 * DAY), at(6 * H)],
    ['6 days: 6 h (a tenth would be 14.4 h)', lived(6 * DAY), at(6 * H)],
    ['2 days: a tenth of the lifetime, 4.8 h', lived(2 * DAY), at(4.8 * H)],
    ['2 minutes: 12 s, before the lifetime rule at 60 s', lived(120 * S), at(12 * S)],
    ['a lifetime that makes no sense: at issuance', { notBefore: NOW, notAfter: at(-H) }, NOW],
  ];
  for (const [name, cert, want] of firstCases)
    it(name, () => assert.equal(ariFirstCheckAt(cert, NOW).toISOString(), want.toISOString()));

  const SUBJ: AriSubject = { ...SUBJECT, notBefore: NOW, notAfter: at(90 * DAY) };
  const record: AriRecord = {
    serial: SUBJ.serial,
    directoryUrl: SUBJ.directoryUrl,
    checkedAt: NOW.toISOString(),
    nextCheck: at(H).toISOString(),
  };
  const older: AriRecord = { ...record, serial: 'OLD', nextCheck: at(-H).toISOString() };
  type Seen = { asked: boolean; issuedAt?: Date };
  const cases: [string, AriRecord | undefined, Seen, Date, boolean, Date | undefined][] = [
    [
      'issued here: not asked at issuance',
      undefined,
      { asked: false, issuedAt: NOW },
      NOW,
      false,
      at(6 * H),
    ],
    [
      "issued here: an older certificate's due record does not make it due",
      older,
      { asked: false, issuedAt: NOW },
      at(H),
      false,
      at(6 * H),
    ],
    [
      'issued here: not a second before the first check',
      undefined,
      { asked: false, issuedAt: NOW },
      at(6 * H - 1),
      false,
      at(6 * H),
    ],
    [
      'issued here: asked once the first check is due',
      undefined,
      { asked: false, issuedAt: NOW },
      at(6 * H),
      true,
      undefined,
    ],
    [
      'not issued here, not asked yet (once, a restarted daemon): at once',
      record,
      { asked: false },
      NOW,
      true,
      undefined,
    ],
    ['not issued here, nothing stored: at once', undefined, { asked: false }, NOW, true, undefined],
    ['asked: not before the Retry-After', record, { asked: true }, at(H - 1), false, at(H)],
    ['asked: once the Retry-After has passed', record, { asked: true }, at(H), true, undefined],
    ['asked, record lost: at once', undefined, { asked: true }, NOW, true, undefined],
  ];
  for (const [name, prev, seen, now, due, next] of cases)
    it(name, () => {
      const got = ariCheck(prev, SUBJ, seen, now);
      assert.equal(got.due, due);
      assert.equal(got.due ? undefined : got.nextCheck.toISOString(), next?.toISOString());
    });
});

describe('ARI: a renewal the CA window made due (exempt from rate limits)', () => {
  const record: AriRecord = {
    serial: 'P1',
    directoryUrl: PROD_URL,
    checkedAt: NOW.toISOString(),
    nextCheck: at(H).toISOString(),
    window: { start: at(-H).toISOString(), end: at(H).toISOString() },
    renewAt: at(-H / 2).toISOString(),
  };
  // A window that opens after five sixths of the lifetime: the drawn time
  // was pulled back to that margin, before the window.
  const late: AriRecord = {
    ...record,
    window: { start: at(2 * H).toISOString(), end: at(3 * H).toISOString() },
    renewAt: at(-H / 2).toISOString(),
  };
  const cases: [string, AriRecord | undefined, Date, boolean][] = [
    ['is due once the drawn time inside an open window has passed', record, NOW, true],
    ['is not due before the drawn time', record, at(-H), false],
    ['is not due without a record', undefined, NOW, false],
    [
      'is not due by a time drawn for another certificate',
      { ...record, serial: 'OLD' },
      NOW,
      false,
    ],
    [
      'is not due by a time pulled back before a window that has not opened (an ordinary order)',
      late,
      NOW,
      false,
    ],
    ['is due by that time once the window has opened', late, at(2 * H), true],
    [
      'is due by a window in the past (a revocation)',
      { ...record, window: { start: at(-2 * H).toISOString(), end: at(-H).toISOString() } },
      NOW,
      true,
    ],
  ];
  for (const [name, rec, now, want] of cases)
    it(name, () =>
      assert.equal(dueByAriWindow(rec, { serial: 'P1', directoryUrl: PROD_URL }, now), want),
    );
});
