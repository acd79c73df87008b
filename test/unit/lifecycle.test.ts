import assert from 'node:assert/strict';
import type { AcmePhase, CertMeta } from '../../src/domain/types.js';
import {
  decide,
  renewalTime,
  renewBeforeFor,
  renewBeforeWarning,
  retryDelayMs,
  wakeupMs,
  type Action,
  type CertFacts,
  type LiveFacts,
} from '../../src/lifecycle/policy.js';
import { Reason } from '../../src/lifecycle/reasons.js';
import { deploymentStale } from '../../src/lifecycle/deployment.js';

const DAY = 24 * 60 * 60 * 1000;
const NOW = new Date('2026-06-01T00:00:00Z');
const STAGING_URL = 'https://staging.test/dir';
const PROD_URL = 'https://prod.test/dir';
const DOMAINS = ['a.example.com', 'www.a.example.com'];

function meta(phase: AcmePhase, over: Partial<CertMeta> = {}): CertMeta {
  return {
    name: 'a.example.com',
    phase,
    domains: DOMAINS,
    directoryUrl: phase === 'staging' ? STAGING_URL : PROD_URL,
    keyType: 'ecdsa-p384',
    notBefore: new Date(NOW.getTime() - 10 * DAY).toISOString(),
    notAfter: new Date(NOW.getTime() + 80 * DAY).toISOString(),
    serial: phase === 'staging' ? 'S1' : 'P1',
    chainVerified: true,
    issuedAt: new Date(NOW.getTime() - 10 * DAY).toISOString(),
    ...over,
  };
}

function live(m: CertMeta | undefined, phase?: LiveFacts['phase']): LiveFacts {
  return {
    serial: m?.serial ?? 'X',
    notAfter: m?.notAfter ?? new Date(NOW.getTime() + 90 * DAY).toISOString(),
    phase: phase ?? m?.phase ?? 'self-signed',
  };
}

function facts(over: Partial<CertFacts> = {}): CertFacts {
  return {
    name: 'a.example.com',
    domains: DOMAINS,
    target: 'production',
    keyType: 'ecdsa-p384',
    directories: { staging: STAGING_URL, production: PROD_URL },
    stored: {},
    ...over,
  };
}

const placeholder: LiveFacts = live(undefined, 'self-signed');
const S = meta('staging');
const P = meta('production');
const expired = {
  notBefore: new Date(NOW.getTime() - 100 * DAY).toISOString(),
  notAfter: new Date(NOW.getTime() - DAY).toISOString(),
};
const renewing = {
  notBefore: new Date(NOW.getTime() - 70 * DAY).toISOString(),
  notAfter: new Date(NOW.getTime() + 20 * DAY).toISOString(),
};

describe('lifecycle: decide', () => {
  const cases: { name: string; facts: CertFacts; want: Action }[] = [
    {
      name: 'writes a placeholder first when nothing is served, so nginx can start',
      facts: facts(),
      want: { kind: 'placeholder', reason: Reason.Missing },
    },
    {
      name: 'writes a fresh placeholder when the served placeholder has expired',
      facts: facts({
        live: { ...placeholder, notAfter: new Date(NOW.getTime() - 1).toISOString() },
      }),
      want: { kind: 'placeholder', reason: Reason.PlaceholderExpired },
    },
    {
      name: 'orders from staging first when production is wanted and staging never ran',
      facts: facts({ live: placeholder }),
      want: { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst },
    },
    {
      name: 'orders from staging when staging is the target and nothing was issued',
      facts: facts({ target: 'staging', live: placeholder }),
      want: { kind: 'issue', phase: 'staging', reason: Reason.NotIssued },
    },
    {
      name: 'deploys a fresh staging certificate over the placeholder',
      facts: facts({ target: 'staging', live: placeholder, stored: { staging: S } }),
      want: { kind: 'deploy', phase: 'staging', reason: Reason.LiveOutdated },
    },
    {
      name: 'does nothing when the staging target is served and valid',
      facts: facts({ target: 'staging', live: live(S), stored: { staging: S } }),
      want: {
        kind: 'none',
        reason: Reason.Valid,
        renewAt: new Date(new Date(S.notAfter).getTime() - 30 * DAY),
      },
    },
    {
      name: 'promotes to production once staging has succeeded for the same hostnames',
      facts: facts({ live: live(S), stored: { staging: S } }),
      want: { kind: 'issue', phase: 'production', reason: Reason.StagingOnly },
    },
    {
      name: 'promotes even when the staging certificate has since expired: the path was proven',
      facts: facts({ live: placeholder, stored: { staging: meta('staging', expired) } }),
      want: { kind: 'issue', phase: 'production', reason: Reason.StagingOnly },
    },
    {
      name: 'does not count a staging run from another staging CA as proof',
      facts: facts({
        live: placeholder,
        stored: { staging: meta('staging', { directoryUrl: 'https://old.test/dir' }) },
      }),
      want: { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst },
    },
    {
      name: 'does not count a staging run for other hostnames as proof',
      facts: facts({
        live: placeholder,
        stored: { staging: meta('staging', { domains: ['a.example.com'] }) },
      }),
      want: { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst },
    },
    {
      name: 'deploys the production certificate over the staging one',
      facts: facts({ live: live(S), stored: { staging: S, production: P } }),
      want: { kind: 'deploy', phase: 'production', reason: Reason.LiveOutdated },
    },
    {
      name: 'does nothing when production is served and valid',
      facts: facts({ live: live(P), stored: { staging: S, production: P } }),
      want: {
        kind: 'none',
        reason: Reason.Valid,
        renewAt: new Date(new Date(P.notAfter).getTime() - 30 * DAY),
      },
    },
    {
      name: 'keeps a valid production certificate when switched back to staging',
      facts: facts({ target: 'staging', live: live(P), stored: { production: P } }),
      want: {
        kind: 'none',
        reason: Reason.Valid,
        renewAt: new Date(new Date(P.notAfter).getTime() - 30 * DAY),
      },
    },
    {
      name: 'never replaces a served production certificate with a staging one',
      facts: facts({ target: 'staging', live: live(P), stored: { staging: S, production: P } }),
      want: {
        kind: 'none',
        reason: Reason.Valid,
        renewAt: new Date(new Date(P.notAfter).getTime() - 30 * DAY),
      },
    },
    {
      name: 'renews production inside the renewal window',
      facts: facts({
        live: live(meta('production', renewing)),
        stored: { staging: S, production: meta('production', renewing) },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.NearingExpiry },
    },
    {
      name: 'does not trigger renewal one day before the renewal window',
      facts: facts({
        live: live(
          meta('production', { notAfter: new Date(NOW.getTime() + 31 * DAY).toISOString() }),
        ),
        stored: {
          staging: S,
          production: meta('production', {
            notAfter: new Date(NOW.getTime() + 31 * DAY).toISOString(),
            notBefore: new Date(NOW.getTime() - 59 * DAY).toISOString(),
          }),
        },
      }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: new Date(NOW.getTime() + DAY) },
    },
    {
      name: 'renews an expired production certificate',
      facts: facts({
        live: live(meta('production', expired)),
        stored: { staging: meta('staging', expired), production: meta('production', expired) },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.Expired },
    },
    {
      name: 're-issues through staging when hostnames are added',
      facts: facts({
        domains: [...DOMAINS, 'new.example.com'],
        live: live(P),
        stored: { staging: S, production: P },
      }),
      want: { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst },
    },
    {
      name: 'keeps serving the old production certificate while the new hostnames pass staging',
      facts: facts({
        domains: ['a.example.com'],
        live: live(P),
        stored: {
          staging: meta('staging', { domains: ['a.example.com'], serial: 'S2' }),
          production: P,
        },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.DomainsChanged },
    },
    {
      name: 're-issues when the production CA directory changes, keyed on the URL not the issuer name',
      facts: facts({
        live: live(P),
        stored: {
          staging: S,
          production: meta('production', { directoryUrl: 'https://other.test/dir' }),
        },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.IssuerChanged },
    },
    {
      name: 're-issues when the key type changes',
      facts: facts({
        keyType: 'rsa-2048',
        live: live(P),
        stored: { staging: meta('staging', { keyType: 'rsa-2048' }), production: P },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.KeyTypeChanged },
    },
    {
      name: 're-issues when the profile changes, like a changed key type',
      facts: facts({
        profile: 'short',
        live: live(P),
        stored: {
          staging: meta('staging', { profile: 'short' }),
          production: meta('production', { profile: 'default' }),
        },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.ProfileChanged },
    },
    {
      name: 're-issues when a profile is set for a certificate issued under none',
      facts: facts({
        profile: 'short',
        live: live(P),
        stored: { staging: meta('staging', { profile: 'short' }), production: P },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.ProfileChanged },
    },
    {
      name: 're-issues when the profile is unset for a certificate issued under one',
      facts: facts({
        live: live(P),
        stored: { staging: S, production: meta('production', { profile: 'short' }) },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.ProfileChanged },
    },
    {
      name: 'does not re-issue a certificate stored before profiles (none recorded) when none is configured',
      facts: facts({ live: live(P), stored: { staging: S, production: P } }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: new Date(NOW.getTime() + 50 * DAY) },
    },
    {
      name: 'does nothing when the stored certificate has the profile asked for',
      facts: facts({
        profile: 'short',
        live: live(P),
        stored: {
          staging: meta('staging', { profile: 'short' }),
          production: meta('production', { profile: 'short' }),
        },
      }),
      want: { kind: 'none', reason: Reason.Valid, renewAt: new Date(NOW.getTime() + 50 * DAY) },
    },
    {
      name: 'goes through staging again when the staging proof was made under another profile',
      facts: facts({
        profile: 'short',
        live: live(P),
        stored: { staging: S, production: P },
      }),
      want: { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst },
    },
    {
      name: 're-issues when the stored chain did not verify',
      facts: facts({
        live: live(P),
        stored: { staging: S, production: meta('production', { chainVerified: false }) },
      }),
      want: { kind: 'issue', phase: 'production', reason: Reason.ChainUnverified },
    },
    {
      name: 'restores the stored production certificate when live/ serves something foreign',
      facts: facts({ live: live(undefined, 'foreign'), stored: { staging: S, production: P } }),
      want: { kind: 'deploy', phase: 'production', reason: Reason.LiveOutdated },
    },
    {
      name: 'restores the stored certificate when live/ was deleted, instead of a placeholder',
      facts: facts({ stored: { staging: S, production: P } }),
      want: { kind: 'deploy', phase: 'production', reason: Reason.LiveOutdated },
    },
    {
      name: 'serves the still-valid production certificate while its renewal is pending',
      facts: facts({
        live: placeholder,
        stored: { staging: S, production: meta('production', renewing) },
      }),
      want: { kind: 'deploy', phase: 'production', reason: Reason.LiveOutdated },
    },
    {
      name: 'orders a new production certificate when forced, even though the one served is valid',
      facts: facts({ force: true, live: live(P), stored: { staging: S, production: P } }),
      want: { kind: 'issue', phase: 'production', reason: Reason.Forced },
    },
    {
      name: 'still passes staging first when forced for hostnames never staged',
      facts: facts({ force: true, live: placeholder }),
      want: { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst },
    },
    {
      name: 'deploys before forcing, so a forced order never leaves nginx on an old certificate',
      facts: facts({ force: true, live: live(S), stored: { staging: S, production: P } }),
      want: { kind: 'deploy', phase: 'production', reason: Reason.LiveOutdated },
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(decide(c.facts, NOW), c.want));
  }
});

describe('lifecycle: renewalTime', () => {
  const nb = new Date('2026-01-01T00:00:00Z');
  const cases: { name: string; days: number; before?: number; wantDaysAfterStart: number }[] = [
    { name: 'renews a 90-day certificate with 30 days left', days: 90, wantDaysAfterStart: 60 },
    { name: 'renews a 6-day certificate with half its life left', days: 6, wantDaysAfterStart: 3 },
    {
      name: 'renews a certificate just under 10 days at half its life',
      days: 9.999,
      wantDaysAfterStart: 4.9995,
    },
    {
      name: 'treats exactly 10 days as long-lived (a third left)',
      days: 10,
      wantDaysAfterStart: 20 / 3,
    },
    {
      name: 'honours RENEW_BEFORE_DAYS when it fits the lifetime',
      days: 90,
      before: 10,
      wantDaysAfterStart: 80,
    },
    {
      name: 'renews a 6-day certificate at half its life when RENEW_BEFORE_DAYS exceeds the lifetime',
      days: 6,
      before: 30,
      wantDaysAfterStart: 3,
    },
    {
      name: 'caps a RENEW_BEFORE_DAYS just under a 6-day lifetime at half, not every pass',
      days: 6,
      before: 5.99,
      wantDaysAfterStart: 3,
    },
    {
      name: 'honours a RENEW_BEFORE_DAYS under half a 6-day lifetime',
      days: 6,
      before: 1,
      wantDaysAfterStart: 5,
    },
    {
      name: 'caps RENEW_BEFORE_DAYS at half a 90-day lifetime',
      days: 90,
      before: 60,
      wantDaysAfterStart: 45,
    },
    {
      name: 'honours RENEW_BEFORE_DAYS of exactly half the lifetime',
      days: 90,
      before: 45,
      wantDaysAfterStart: 45,
    },
    {
      name: 'renews at half a 90-day lifetime when RENEW_BEFORE_DAYS equals the lifetime',
      days: 90,
      before: 90,
      wantDaysAfterStart: 45,
    },
    {
      name: 'caps RENEW_BEFORE_DAYS for a two-minute certificate at one minute',
      days: 120 / 86_400,
      before: 1,
      wantDaysAfterStart: 60 / 86_400,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const na = new Date(nb.getTime() + c.days * DAY);
      const got = renewalTime(nb, na, c.before);
      assert.equal(got.getTime(), nb.getTime() + Math.round(c.wantDaysAfterStart * DAY));
    });
  }
});

describe('lifecycle: renewBeforeFor and its warning', () => {
  const cases: {
    name: string;
    lifetimeDays: number;
    before?: number;
    want?: { days: number; use: string };
    warns: boolean;
  }[] = [
    { name: 'is nothing when RENEW_BEFORE_DAYS is not set', lifetimeDays: 6, warns: false },
    {
      name: 'applies a value under half the lifetime as set, without a warning',
      lifetimeDays: 90,
      before: 30,
      want: { days: 30, use: 'applied' },
      warns: false,
    },
    {
      name: 'caps a value over half the lifetime, with a warning',
      lifetimeDays: 6,
      before: 5,
      want: { days: 3, use: 'capped' },
      warns: true,
    },
    {
      name: 'marks a value equal to the lifetime as beyond it, with a warning',
      lifetimeDays: 6,
      before: 6,
      want: { days: 3, use: 'beyond-lifetime' },
      warns: true,
    },
    {
      name: 'marks a 30-day value on a 160-hour certificate as beyond the lifetime',
      lifetimeDays: 160 / 24,
      before: 30,
      want: { days: 80 / 24, use: 'beyond-lifetime' },
      warns: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rb = renewBeforeFor(c.lifetimeDays * DAY, c.before);
      assert.deepEqual(
        rb && { days: Math.round((rb.ms / DAY) * 1e6) / 1e6, use: rb.use },
        c.want && { days: Math.round(c.want.days * 1e6) / 1e6, use: c.want.use },
      );
      const nb = new Date('2026-01-01T00:00:00Z');
      const w = renewBeforeWarning(
        {
          notBefore: nb.toISOString(),
          notAfter: new Date(nb.getTime() + c.lifetimeDays * DAY).toISOString(),
        },
        c.before,
      );
      assert.equal(w !== undefined, c.warns);
      if (w) {
        assert.equal(w.renewBeforeDays, c.before);
        assert.equal(w.lifetimeS, Math.round((c.lifetimeDays * DAY) / 1000));
        assert.equal(w.usedS, Math.round((c.want!.days * DAY) / 1000));
        assert.match(w.message, /RENEW_BEFORE_DAYS/);
      }
    });
  }
});

describe('lifecycle: wakeupMs', () => {
  const at = (ms: number): string => new Date(NOW.getTime() + ms).toISOString();
  const LOOP = 300_000;
  const cases: { name: string; retries: (string | undefined)[]; want: number | undefined }[] = [
    { name: 'sleeps until the regular pass when nothing waits', retries: [], want: undefined },
    {
      name: 'ignores certificates without a retry',
      retries: [undefined, undefined],
      want: undefined,
    },
    {
      name: 'wakes one second after a retry or renewal due in a minute',
      retries: [at(60_000)],
      want: 61_000,
    },
    {
      name: 'wakes for the earliest of several times',
      retries: [at(600_000), at(60_000), undefined, at(120_000)],
      want: 61_000,
    },
    {
      name: 'leaves a retry after the regular pass to that pass',
      retries: [at(LOOP)],
      want: undefined,
    },
    {
      name: 'leaves retries already due to the regular pass',
      retries: [at(-1), at(0)],
      want: undefined,
    },
    { name: 'skips an unparsable retry time', retries: ['soon', at(30_000)], want: 31_000 },
  ];
  for (const c of cases) it(c.name, () => assert.equal(wakeupMs(c.retries, NOW, LOOP), c.want));
  it('caps the delay at what setTimeout takes', () => {
    assert.equal(wakeupMs([at(40 * DAY)], NOW, Infinity), 2 ** 31 - 1);
  });
});

describe('lifecycle: retryDelayMs', () => {
  const mid = () => 0.5; // no jitter
  const H = 3600_000;
  const cases: {
    name: string;
    attempt: number;
    retryAfter?: number;
    untilExpiry?: number;
    placeholder?: boolean;
    want: number;
  }[] = [
    { name: 'waits one minute after the first failure', attempt: 1, want: 60_000 },
    {
      name: 'waits at most a third of the time left on the served certificate',
      attempt: 4,
      untilExpiry: 48 * H,
      want: 16 * H,
    },
    {
      name: 'the ten-minute step shrinks for a certificate with five minutes left',
      attempt: 2,
      untilExpiry: 300_000,
      want: 100_000,
    },
    {
      name: 'never shorter than the first step, however close the expiry',
      attempt: 3,
      untilExpiry: 30_000,
      want: 60_000,
    },
    {
      name: 'waits only the first step, not a day, while an expired certificate is served',
      attempt: 4,
      untilExpiry: -H,
      want: 60_000,
    },
    {
      name: 'waits only the first step, not ten minutes, after a second failure past expiry',
      attempt: 2,
      untilExpiry: -1000,
      want: 60_000,
    },
    {
      name: 'waits the first step for a certificate that expires at this instant',
      attempt: 3,
      untilExpiry: 0,
      want: 60_000,
    },
    {
      name: "still lets the CA's Retry-After win while an expired certificate is served",
      attempt: 5,
      untilExpiry: -DAY,
      retryAfter: 1800,
      want: 1_800_000,
    },
    {
      name: 'keeps the plain schedule for an expired self-signed placeholder',
      attempt: 4,
      untilExpiry: -H,
      placeholder: true,
      want: DAY,
    },
    {
      name: 'keeps the plain schedule when nothing is served',
      attempt: 4,
      want: DAY,
    },
    {
      name: 'keeps the plain schedule when the expiry is unknown (an unreadable notAfter)',
      attempt: 4,
      untilExpiry: Number.NaN,
      want: DAY,
    },
    {
      name: 'leaves a step shorter than the cap alone',
      attempt: 2,
      untilExpiry: 60 * DAY,
      want: 600_000,
    },
    {
      name: "lets the CA's Retry-After win over the expiry cap",
      attempt: 4,
      untilExpiry: 3 * H,
      retryAfter: 7200,
      want: 2 * H,
    },
    { name: 'waits ten minutes after the second', attempt: 2, want: 600_000 },
    { name: 'waits 100 minutes after the third', attempt: 3, want: 6_000_000 },
    { name: 'waits a day after the fourth and later', attempt: 9, want: DAY },
    {
      name: 'lets a longer Retry-After from the CA win',
      attempt: 1,
      retryAfter: 3600,
      want: 3_600_000,
    },
    { name: 'ignores a shorter Retry-After', attempt: 2, retryAfter: 5, want: 600_000 },
  ];
  for (const c of cases)
    it(c.name, () =>
      assert.equal(
        retryDelayMs(c.attempt, mid, c.retryAfter, c.untilExpiry, c.placeholder),
        c.want,
      ),
    );
  it('jitters by at most ten percent either way', () => {
    assert.equal(
      retryDelayMs(1, () => 0),
      54_000,
    );
    assert.equal(
      retryDelayMs(1, () => 1),
      66_000,
    );
  });
});

describe('lifecycle: deploymentStale', () => {
  const at = new Date('2026-06-01T00:00:00Z');
  const later = (s: number) => new Date(at.getTime() + s * 1000);
  const cases: {
    name: string;
    states: ('current' | 'stale' | 'unreachable')[];
    deployedAt?: Date;
    now: Date;
    want: boolean;
  }[] = [
    {
      name: 'is not stale when every endpoint serves the new certificate',
      states: ['current', 'current'],
      deployedAt: at,
      now: later(600),
      want: false,
    },
    {
      name: 'gives nginx the grace period to reload before calling it stale',
      states: ['stale'],
      deployedAt: at,
      now: later(59),
      want: false,
    },
    {
      name: 'reports an endpoint still serving the old certificate after the grace period',
      states: ['current', 'stale'],
      deployedAt: at,
      now: later(60),
      want: true,
    },
    {
      name: 'reports a mismatch at once when the deployment time is unknown',
      states: ['stale'],
      now: later(1),
      want: true,
    },
    {
      name: 'does not call an unreachable endpoint stale',
      states: ['unreachable'],
      deployedAt: at,
      now: later(600),
      want: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(deploymentStale(c.states, c.deployedAt, c.now, 60_000), c.want));
  }
});
