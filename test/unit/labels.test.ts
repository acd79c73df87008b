// Hostnames declared on containers and services (src/platform/labels.ts):
// the label reader shared by Rancher and Docker, and nginx-proxy's env lists.
import assert from 'node:assert/strict';
import {
  CHALLENGE_LABEL,
  DENT_LABEL,
  DOMAINS_LABEL,
  PROFILE_LABEL,
  specsFromHostList,
  specsFromLabels,
} from '../../src/platform/labels.js';
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

describe('specsFromLabels', () => {
  it('names a wildcard in the Dent label _.<domain>, as lego does', () => {
    const d = specsFromLabels({ [DENT_LABEL]: '*.example.com' }, 'src');
    assert.deepEqual(
      d.specs.map((s) => [s.name, s.domains]),
      [['_.example.com', ['*.example.com']]],
    );
  });

  it('applies the challenge label to every certificate of the object', () => {
    const d = specsFromLabels(
      { [DOMAINS_LABEL]: 'a.example.com,b.example.com', [CHALLENGE_LABEL]: ' DNS-01 ' },
      'src',
    );
    assert.deepEqual(
      d.specs.map((s) => [s.name, s.challenge]),
      [
        ['a.example.com', 'dns-01'],
        ['b.example.com', 'dns-01'],
      ],
    );
  });

  it('skips the certificates of an object whose challenge label is no challenge type', () => {
    const d = specsFromLabels(
      { [DOMAINS_LABEL]: 'a.example.com', [CHALLENGE_LABEL]: 'tls-alpn-01' },
      'src',
    );
    assert.deepEqual(d.specs, []);
    assert.deepEqual(
      d.problems.map((p) => [p.code, p.source]),
      [['bad-challenge', `src:${CHALLENGE_LABEL}`]],
    );
  });

  it('reads both labels and ignores every other label', () => {
    const d = specsFromLabels(
      {
        [DENT_LABEL]: 'a.example.com,b.example.com',
        [DOMAINS_LABEL]: 'shop=shop.example.com+cdn.example.com',
        'com.example.hosts': 'ignored.example.com',
      },
      'src',
    );
    assert.deepEqual(
      d.specs.map((s) => [s.name, s.domains, s.source]),
      [
        ['a.example.com', ['a.example.com'], `src:${DENT_LABEL}`],
        ['b.example.com', ['b.example.com'], `src:${DENT_LABEL}`],
        ['shop', ['shop.example.com', 'cdn.example.com'], `src:${DOMAINS_LABEL}`],
      ],
    );
    assert.deepEqual(d.problems, []);
  });

  it('reports a bad item under the label it came from and keeps the others', () => {
    const d = specsFromLabels({ [DENT_LABEL]: 'ok.example.com,*.*.example.com' }, 'src');
    assert.deepEqual(
      d.specs.map((s) => s.name),
      ['ok.example.com'],
    );
    assert.deepEqual(
      d.problems.map((p) => [p.code, p.source]),
      [['wildcard', `src:${DENT_LABEL}`]],
    );
  });
});

describe('the profile label (io.acme-sidecar.profile)', () => {
  it('sets the profile of every certificate the same labels ask for, and says where it came from', () => {
    const d = specsFromLabels(
      {
        [DENT_LABEL]: 'a.example.com',
        [DOMAINS_LABEL]: 'shop=shop.example.com',
        [PROFILE_LABEL]: 'shortlived',
      },
      'src',
    );
    assert.deepEqual(
      d.specs.map((s) => [s.name, s.profile, s.profileFrom]),
      [
        ['a.example.com', 'shortlived', `src:${PROFILE_LABEL}`],
        ['shop', 'shortlived', `src:${PROFILE_LABEL}`],
      ],
    );
    assert.deepEqual(d.problems, []);
  });

  it('leaves the profile unset without the label, or with an empty one', () => {
    for (const labels of [{}, { [PROFILE_LABEL]: '  ' }] as Record<string, string>[]) {
      const d = specsFromLabels({ [DENT_LABEL]: 'a.example.com', ...labels }, 'src');
      assert.equal(d.specs[0]?.profile, undefined);
      assert.deepEqual(d.problems, []);
    }
  });

  for (const bad of ['../etc', 'short lived', 'a'.repeat(65), 'x\ny', 'é']) {
    it(`skips only that object's certificates for a bad value ${JSON.stringify(bad.slice(0, 20))}, reported`, () => {
      const d = specsFromLabels(
        { [DOMAINS_LABEL]: 'a.example.com+b.example.com', [PROFILE_LABEL]: bad },
        'svc1',
      );
      assert.deepEqual(d.specs, []);
      assert.deepEqual(
        d.problems.map((p) => [p.code, p.source]),
        [['bad-profile', `svc1:${PROFILE_LABEL}`]],
      );
      assert.match(d.problems[0]?.message ?? '', /not a profile name/);
      const other = specsFromLabels({ [DOMAINS_LABEL]: 'c.example.com' }, 'svc2');
      const merged = mergeSpecs([...d.specs, ...other.specs], [...d.problems]);
      assert.deepEqual(
        merged.specs.map((s) => s.name),
        ['c.example.com'],
      );
    });
  }

  it('reports one name asked for under two profiles and keeps the first', () => {
    const one = specsFromLabels({ [DENT_LABEL]: 'a.example.com', [PROFILE_LABEL]: 'x' }, 's1');
    const two = specsFromLabels({ [DENT_LABEL]: 'a.example.com', [PROFILE_LABEL]: 'y' }, 's2');
    const merged = mergeSpecs([...one.specs, ...two.specs], []);
    assert.deepEqual(
      merged.specs.map((s) => [s.name, s.profile]),
      [['a.example.com', 'x']],
    );
    assert.deepEqual(
      merged.problems.map((p) => p.code),
      ['duplicate-name'],
    );
  });
});

describe('specsFromHostList (LETSENCRYPT_HOST, VIRTUAL_HOST)', () => {
  const cases: [string, string, string[] | undefined, string | undefined][] = [
    // [case, value, domains of the one certificate, problem code]
    [
      'makes one certificate named after the first hostname',
      'a.example.com,b.example.com',
      ['a.example.com', 'b.example.com'],
      undefined,
    ],
    [
      'trims blanks around hostnames',
      ' a.example.com , b.example.com ',
      ['a.example.com', 'b.example.com'],
      undefined,
    ],
    [
      'ignores empty entries',
      'a.example.com,,b.example.com,',
      ['a.example.com', 'b.example.com'],
      undefined,
    ],
    [
      'lowercases and converts international names to punycode',
      'Bücher.Example.com',
      ['xn--bcher-kva.example.com'],
      undefined,
    ],
    ['drops a duplicate hostname', 'a.example.com,A.example.com', ['a.example.com'], undefined],
    ['reads nothing from an empty value', '  ', [], undefined],
    ['refuses the DOMAINS "+" syntax', 'a.example.com+b.example.com', undefined, 'bad-character'],
    ['refuses a certificate name prefix', 'x=a.example.com', undefined, 'bad-character'],
    [
      'refuses a value with a line break',
      'a.example.com\nb.example.com',
      undefined,
      'bad-character',
    ],
    [
      'skips the certificate when one hostname is a malformed wildcard',
      'a.example.com,a*.example.com',
      undefined,
      'wildcard',
    ],
    [
      "refuses nginx-proxy's regex VIRTUAL_HOST",
      '~^app\\d+\\.example\\.com$',
      undefined,
      'bad-character',
    ],
    ['accepts an IP address (RFC 8738)', '192.0.2.1', ['192.0.2.1'], undefined],
    ['refuses an IP address in brackets', '[2001:db8::1]', undefined, 'ip-literal'],
  ];
  for (const [name, value, domains, code] of cases) {
    it(name, () => {
      const d = specsFromHostList(value, 'docker:container/x:env:LETSENCRYPT_HOST');
      if (domains === undefined) {
        assert.deepEqual(d.specs, []);
        assert.equal(d.problems.length, 1, JSON.stringify(d.problems));
        assert.equal(d.problems[0]?.code, code);
        assert.equal(d.problems[0]?.source, 'docker:container/x:env:LETSENCRYPT_HOST');
        return;
      }
      assert.deepEqual(d.problems, []);
      if (domains.length === 0) return assert.deepEqual(d.specs, []);
      assert.equal(d.specs.length, 1);
      assert.equal(d.specs[0]?.name, domains[0]);
      assert.deepEqual(d.specs[0]?.domains, domains);
    });
  }

  it('cuts a long bad value in the problem it reports', () => {
    const d = specsFromHostList(`${'a'.repeat(1000)}+b.example.com`, 'src');
    assert.ok((d.problems[0]?.value.length ?? 0) < 400);
  });
});
