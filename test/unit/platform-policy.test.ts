import assert from 'node:assert/strict';
import {
  PlatformReason,
  decidePlatform,
  sameSerial,
  type PlatformAction,
  type PlatformFacts,
} from '../../src/lifecycle/platform-policy.js';
import type { LiveFacts } from '../../src/lifecycle/policy.js';
import { normalizeCattleUrl } from '../../src/platform/rancher/cattle-client.js';
import { cattleSerialToHex, parseCattleDate } from '../../src/platform/rancher/rancher-platform.js';
import { decideOwnership, EMPTY_CLAIMS } from '../../src/lifecycle/ownership.js';
import type { DiscoveryProblem } from '../../src/domain/status.js';
import type { CertSpec } from '../../src/domain/types.js';

/** One request per name, as the Discoverer keeps them (lifecycle/ownership.ts, no claims yet). */
function mergeSpecs(specs: readonly CertSpec[], problems: DiscoveryProblem[]) {
  const d = decideOwnership({
    requests: specs,
    claims: EMPTY_CLAIMS,
    allowed: [],
    now: new Date(0),
  });
  return { specs: d.specs, problems: [...problems, ...d.problems] };
}

const NOW = new Date('2026-06-01T00:00:00Z');
const DAY = 86_400_000;
const future = (d: number) => new Date(NOW.getTime() + d * DAY).toISOString();
const live = (phase: LiveFacts['phase'], serial: string): LiveFacts => ({
  phase,
  serial,
  notAfter: future(60),
});
const serials = { 'self-signed': 'AA01', staging: 'BB02', production: 'CC03' };

describe('platform policy: decidePlatform (the old sidecar flowchart)', () => {
  const cases: { name: string; facts: PlatformFacts; want: PlatformAction }[] = [
    {
      name: 'pushes when the platform lacks the certificate',
      facts: { live: live('production', 'CC03'), serials },
      want: { kind: 'push', reason: PlatformReason.PlatformMissing },
    },
    {
      name: 'pushes the placeholder when the platform lacks it, so load balancers can reference it',
      facts: { live: live('self-signed', 'AA01'), serials },
      want: { kind: 'push', reason: PlatformReason.PlatformMissing },
    },
    {
      name: 'does nothing when the platform holds the served certificate',
      facts: {
        live: live('production', 'CC03'),
        copy: { serial: 'cc03', ours: true, notAfter: future(60) },
        serials,
      },
      want: { kind: 'none', reason: PlatformReason.InSync },
    },
    {
      name: 'compares serials as numbers, not strings (leading zeros)',
      facts: { live: live('production', '00CC03'), copy: { serial: 'CC03', ours: true }, serials },
      want: { kind: 'none', reason: PlatformReason.InSync },
    },
    {
      name: 'replaces a staging copy once production is served (STAGING=false)',
      facts: {
        live: live('production', 'CC03'),
        copy: { serial: 'BB02', ours: true, notAfter: future(60) },
        serials,
      },
      want: { kind: 'push', reason: PlatformReason.PlatformStaging },
    },
    {
      name: 'replaces a self-signed copy',
      facts: {
        live: live('staging', 'BB02'),
        copy: { serial: 'AA01', ours: true, notAfter: future(60) },
        serials,
      },
      want: { kind: 'push', reason: PlatformReason.PlatformSelfSigned },
    },
    {
      name: 'pushes the local certificate when the platform copy is expiring',
      facts: {
        live: live('production', 'CC03'),
        copy: { serial: 'DD04', ours: true, notAfter: future(2) },
        serials,
      },
      want: { kind: 'push', reason: PlatformReason.PlatformExpiring },
    },
    {
      name: 'pushes when the platform copy differs (an older one of ours)',
      facts: {
        live: live('production', 'CC03'),
        copy: { serial: 'DD04', ours: true, notAfter: future(30) },
        serials,
      },
      want: { kind: 'push', reason: PlatformReason.PlatformOutdated },
    },
    {
      name: 'never overwrites a certificate it did not create',
      facts: {
        live: live('production', 'CC03'),
        copy: { serial: 'EE05', ours: false, notAfter: future(30) },
        serials,
      },
      want: { kind: 'conflict', reason: PlatformReason.NotOurs },
    },
    {
      name: 'keeps a valid platform copy of ours while the lost local copy is re-issued (placeholder served)',
      facts: {
        live: live('self-signed', 'FF06'),
        copy: { serial: 'DD04', ours: true, notAfter: future(30) },
        serials: { 'self-signed': 'FF06' },
      },
      want: { kind: 'none', reason: PlatformReason.PlatformKept },
    },
    {
      name: 'replaces an expired platform copy even with a placeholder',
      facts: {
        live: live('self-signed', 'FF06'),
        copy: { serial: 'DD04', ours: true, notAfter: future(-1) },
        serials: { 'self-signed': 'FF06' },
      },
      want: { kind: 'push', reason: PlatformReason.PlatformExpiring },
    },
    {
      name: 'pushes nothing when nothing is served',
      facts: { serials },
      want: { kind: 'none', reason: PlatformReason.NothingServed },
    },
    {
      name: 'pushes nothing when live/ holds a certificate that is not ours',
      facts: { live: live('foreign', '1234'), serials },
      want: { kind: 'none', reason: PlatformReason.NothingServed },
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(decidePlatform(c.facts, NOW), c.want));

  it('treats unparseable serials as different', () =>
    assert.equal(sameSerial('xyz', 'xyz'), false));
});

describe('rancher: Cattle formats', () => {
  const dates: [string, string | undefined][] = [
    ['Thu Dec 24 18:53:38 UTC 2026', '2026-12-24T18:53:38.000Z'],
    ['Mon Jan 5 01:02:03 UTC 2027', '2027-01-05T01:02:03.000Z'],
    ['2026-12-24T18:53:38Z', '2026-12-24T18:53:38.000Z'],
    ['not a date', undefined],
    ['', undefined],
  ];
  for (const [input, want] of dates) {
    it(`parses the date ${JSON.stringify(input)}`, () =>
      assert.equal(parseCattleDate(input)?.toISOString(), want));
  }
  it('turns a decimal serial into hex', () => assert.equal(cattleSerialToHex('255'), 'FF'));
  it('refuses a non-decimal serial', () => assert.equal(cattleSerialToHex('0xff'), undefined));
  const urls: [string, string][] = [
    ['http://rancher:8080/v1', 'http://rancher:8080/v2-beta'],
    ['http://rancher:8080/v1/', 'http://rancher:8080/v2-beta'],
    ['http://rancher:8080', 'http://rancher:8080/v2-beta'],
    ['http://rancher:8080/v1/projects/1a5', 'http://rancher:8080/v2-beta/projects/1a5'],
    ['https://rancher.example.com/v2-beta', 'https://rancher.example.com/v2-beta'],
  ];
  for (const [input, want] of urls) {
    it(`uses ${input} as ${want}, like the Go client`, () =>
      assert.equal(normalizeCattleUrl(input), want));
  }
});

describe('rancher: mergeSpecs', () => {
  it('merges the same certificate asked for by two services', () => {
    const r = mergeSpecs(
      [
        { name: 'a.example.com', domains: ['a.example.com'], source: 's1' },
        { name: 'a.example.com', domains: ['a.example.com'], source: 's2' },
      ],
      [],
    );
    assert.equal(r.specs.length, 1);
    assert.deepEqual(r.problems, []);
  });
  it('reports the same name asked for with other hostnames, keeping the first', () => {
    const r = mergeSpecs(
      [
        { name: 'shop', domains: ['a.example.com'], source: 's1' },
        { name: 'shop', domains: ['b.example.com'], source: 's2' },
      ],
      [],
    );
    assert.deepEqual(
      r.specs.map((s) => s.domains),
      [['a.example.com']],
    );
    assert.equal(r.problems[0]?.code, 'duplicate-name');
    assert.equal(r.problems[0]?.source, 's2');
  });
});
