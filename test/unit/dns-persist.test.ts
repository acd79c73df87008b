// dns-persist-01 (src/domain/dns-persist.ts): the record the operator sets
// once, formatted and read back the way Pebble 2.10.3's VA reads it, and
// the challenge choice for wildcards. Table tests.
import assert from 'node:assert/strict';
import { checkConfig } from '../../src/app/check-config.js';
import { challengeFor } from '../../src/domain/challenges.js';
import {
  formatPersistRecord,
  issuerDomainNamesOf,
  parsePersistValue,
  persistRecordLine,
  persistRecordName,
  persistRecordVerdict,
  persistRecordsFor,
} from '../../src/domain/dns-persist.js';
import { buildStatusSnapshot } from '../../src/http/status.js';
import { renderStatusPage } from '../../src/http/page.js';

const ACCT = 'https://127.0.0.1:14000/my-account/1';

describe('persistRecordName', () => {
  const cases: [string, string, string][] = [
    [
      'prefixes _validation-persist to a plain name',
      'shop.example.com',
      '_validation-persist.shop.example.com',
    ],
    ['uses the base name of a wildcard', '*.example.com', '_validation-persist.example.com'],
    [
      'lowercases and drops a trailing dot',
      'Shop.Example.COM.',
      '_validation-persist.shop.example.com',
    ],
  ];
  for (const [name, domain, want] of cases) {
    it(name, () => assert.equal(persistRecordName(domain), want));
  }
});

describe('formatPersistRecord', () => {
  const cases: {
    name: string;
    input: Parameters<typeof formatPersistRecord>[0];
    value?: string;
    throws?: RegExp;
  }[] = [
    {
      name: 'writes issuer; accounturi for a plain name',
      input: { domain: 'a.test', issuerDomainName: 'pebble.letsencrypt.org', accountUri: ACCT },
      value: `pebble.letsencrypt.org; accounturi=${ACCT}`,
    },
    {
      name: 'adds policy=wildcard when asked',
      input: {
        domain: '*.a.test',
        issuerDomainName: 'letsencrypt.org',
        accountUri: ACCT,
        wildcard: true,
      },
      value: `letsencrypt.org; accounturi=${ACCT}; policy=wildcard`,
    },
    {
      name: 'normalizes the issuer name (case, trailing dot) as the CA compares it',
      input: { domain: 'a.test', issuerDomainName: 'Pebble.LetsEncrypt.org.', accountUri: ACCT },
      value: `pebble.letsencrypt.org; accounturi=${ACCT}`,
    },
    {
      name: 'refuses an account URL with a space (not an RFC 8659 value)',
      input: { domain: 'a.test', issuerDomainName: 'ca.test', accountUri: 'https://x/a b' },
      throws: /issue-value/,
    },
    {
      name: 'refuses an account URL with a semicolon',
      input: { domain: 'a.test', issuerDomainName: 'ca.test', accountUri: 'https://x/a;b' },
      throws: /issue-value/,
    },
    {
      name: 'refuses an issuer that is no domain name',
      input: { domain: 'a.test', issuerDomainName: 'ca test', accountUri: ACCT },
      throws: /not a domain name/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (c.throws) {
        assert.throws(() => formatPersistRecord(c.input), c.throws);
        return;
      }
      const r = formatPersistRecord(c.input);
      assert.equal(r.value, c.value);
      assert.equal(r.name, persistRecordName(c.input.domain));
    });
  }

  it('reads back what it writes', () => {
    const r = formatPersistRecord({
      domain: '*.a.test',
      issuerDomainName: 'ca.test',
      accountUri: ACCT,
      wildcard: true,
    });
    assert.deepEqual(parsePersistValue(r.value), {
      ok: true,
      value: { issuerDomainName: 'ca.test', accountUri: ACCT, policy: 'wildcard' },
    });
  });

  it('prints a zone-file line with the value quoted', () => {
    assert.equal(
      persistRecordLine({ name: '_validation-persist.a.test', value: 'ca.test; accounturi=x' }),
      '_validation-persist.a.test. TXT "ca.test; accounturi=x"',
    );
  });
});

describe('parsePersistValue', () => {
  const cases: { name: string; txt: string; ok: boolean; value?: object; problem?: RegExp }[] = [
    {
      name: 'reads every parameter',
      txt: `ca.test; accounturi=${ACCT}; policy=wildcard; persistUntil=1735689600`,
      ok: true,
      value: {
        issuerDomainName: 'ca.test',
        accountUri: ACCT,
        policy: 'wildcard',
        persistUntil: 1735689600,
      },
    },
    {
      name: 'takes tags and the policy value case-insensitively',
      txt: `CA.Test.; AccountURI=${ACCT}; POLICY=WildCard`,
      ok: true,
      value: { issuerDomainName: 'ca.test', accountUri: ACCT, policy: 'wildcard' },
    },
    {
      name: 'treats a policy other than wildcard as absent',
      txt: `ca.test; accounturi=${ACCT}; policy=subdomains`,
      ok: true,
      value: { issuerDomainName: 'ca.test', accountUri: ACCT },
    },
    {
      name: 'ignores unknown tags and spaces around parts',
      txt: `  ca.test  ;  accounturi = ${ACCT} ; other=1`,
      ok: true,
      value: { issuerDomainName: 'ca.test', accountUri: ACCT },
    },
    {
      name: 'refuses a value without accounturi',
      txt: 'ca.test; policy=wildcard',
      ok: false,
      problem: /no accounturi/,
    },
    {
      name: 'refuses an empty issuer',
      txt: `; accounturi=${ACCT}`,
      ok: false,
      problem: /no issuer/,
    },
    {
      name: 'refuses a repeated tag',
      txt: `ca.test; accounturi=a; AccountUri=b`,
      ok: false,
      problem: /twice/,
    },
    {
      name: 'refuses a trailing semicolon',
      txt: `ca.test; accounturi=${ACCT};`,
      ok: false,
      problem: /empty parameter/,
    },
    {
      name: 'refuses a parameter without =',
      txt: `ca.test; accounturi=${ACCT}; wildcard`,
      ok: false,
      problem: /tag=value/,
    },
    {
      name: 'refuses a persistUntil that is no number',
      txt: `ca.test; accounturi=a; persistUntil=soon`,
      ok: false,
      problem: /not a number/,
    },
    { name: 'refuses the empty string', txt: '', ok: false, problem: /no issuer/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = parsePersistValue(c.txt);
      assert.equal(got.ok, c.ok, JSON.stringify(got));
      if (got.ok) assert.deepEqual(got.value, c.value);
      else assert.match(got.problem, c.problem ?? /./);
    });
  }
});

describe('persistRecordVerdict', () => {
  const want = { issuerDomainNames: ['ca.test'], accountUri: ACCT, wildcard: false, nowS: 1000 };
  const cases: {
    name: string;
    txts: string[];
    want?: Partial<typeof want>;
    ok: boolean;
    reason?: RegExp;
  }[] = [
    {
      name: 'passes a record for this CA and account',
      txts: [`ca.test; accounturi=${ACCT}`],
      ok: true,
    },
    {
      name: 'passes when one of several records is ours (one per CA account)',
      txts: [`ca.test; accounturi=https://other/1`, `ca.test; accounturi=${ACCT}`],
      ok: true,
    },
    { name: 'fails with no record', txts: [], ok: false, reason: /no TXT record/ },
    {
      name: 'fails another CA',
      txts: [`other.test; accounturi=${ACCT}`],
      ok: false,
      reason: /not this CA/,
    },
    {
      name: 'fails another account',
      txts: [`ca.test; accounturi=https://other/1`],
      ok: false,
      reason: /not our account/,
    },
    {
      name: 'fails a wildcard without policy=wildcard',
      txts: [`ca.test; accounturi=${ACCT}`],
      want: { wildcard: true },
      ok: false,
      reason: /policy=wildcard/,
    },
    {
      name: 'passes a wildcard with policy=wildcard',
      txts: [`ca.test; accounturi=${ACCT}; policy=wildcard`],
      want: { wildcard: true },
      ok: true,
    },
    {
      name: 'fails a record past its persistUntil',
      txts: [`ca.test; accounturi=${ACCT}; persistUntil=999`],
      ok: false,
      reason: /has passed/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = persistRecordVerdict(c.txts, { ...want, ...c.want });
      assert.equal(got.ok, c.ok, JSON.stringify(got));
      if (!got.ok) assert.match(got.reason, c.reason ?? /./);
    });
  }
});

describe('issuerDomainNamesOf', () => {
  const cases: { name: string; challenge: Record<string, unknown>; want: string[] | undefined }[] =
    [
      {
        name: "reads Pebble's issuer-domain-names",
        challenge: { 'issuer-domain-names': ['pebble.letsencrypt.org'] },
        want: ['pebble.letsencrypt.org'],
      },
      {
        name: "reads draft-02's issuerDomainNames",
        challenge: { issuerDomainNames: ['LetsEncrypt.org.'] },
        want: ['letsencrypt.org'],
      },
      { name: 'refuses an empty list', challenge: { 'issuer-domain-names': [] }, want: undefined },
      {
        name: 'refuses more than 10 names',
        challenge: { 'issuer-domain-names': Array.from({ length: 11 }, (_, i) => `ca${i}.test`) },
        want: undefined,
      },
      {
        name: 'refuses a name that is no domain',
        challenge: { 'issuer-domain-names': ['a b'] },
        want: undefined,
      },
      { name: 'refuses a missing field', challenge: {}, want: undefined },
    ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(issuerDomainNamesOf(c.challenge), c.want));
  }
});

describe('persistRecordsFor', () => {
  it('gives one record per base name, with policy=wildcard when any name is its wildcard', () => {
    const got = persistRecordsFor(['b.test', '*.a.test', 'a.test', 'B.test'], {
      issuerDomainName: 'ca.test',
      accountUri: ACCT,
    });
    assert.deepEqual(got, [
      { name: '_validation-persist.a.test', value: `ca.test; accounturi=${ACCT}; policy=wildcard` },
      { name: '_validation-persist.b.test', value: `ca.test; accounturi=${ACCT}` },
    ]);
  });
});

describe('challengeFor with dns-persist-01', () => {
  const cases: {
    name: string;
    domains: string[];
    label?: 'http-01' | 'dns-01' | 'dns-persist-01';
    setting: 'http-01' | 'dns-01' | 'dns-persist-01';
    want: string;
  }[] = [
    {
      name: 'keeps dns-persist-01 for a wildcard when the setting asks for it',
      domains: ['*.a.test'],
      setting: 'dns-persist-01',
      want: 'dns-persist-01',
    },
    {
      name: 'keeps dns-persist-01 for a wildcard when its label asks for it',
      domains: ['*.a.test'],
      label: 'dns-persist-01',
      setting: 'http-01',
      want: 'dns-persist-01',
    },
    {
      name: 'still uses dns-01 for a wildcard whose label asks for http-01',
      domains: ['*.a.test'],
      label: 'http-01',
      setting: 'dns-persist-01',
      want: 'dns-01',
    },
    {
      name: 'uses the setting for a plain name',
      domains: ['a.test'],
      setting: 'dns-persist-01',
      want: 'dns-persist-01',
    },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.equal(
        challengeFor({ domains: c.domains, ...(c.label && { challenge: c.label }) }, c.setting)
          .type,
        c.want,
      ),
    );
  }
});

describe('dns-persist-01 on check-config and /status', () => {
  const record = {
    phase: 'staging' as const,
    name: '_validation-persist.a.test',
    value: `ca.test; accounturi=${ACCT}`,
    domains: ['a.test'],
  };

  type Deps = Parameters<typeof checkConfig>[0];
  /** check-config for one dns-persist-01 name, a.test, and a staging CA that answers. */
  const persistDeps = (over: Partial<Deps> = {}): Deps => ({
    directories: [{ phase: 'staging', url: 'https://s/dir' }],
    probeDirectory: () => Promise.resolve({ ok: true, detail: 'answers' }),
    platform: {
      name: 'static',
      discover: () =>
        Promise.resolve({
          specs: [{ name: 'a.test', domains: ['a.test'], source: 'env' }],
          problems: [],
        }),
    },
    responder: {
      present: () => Promise.resolve(),
      verify: () => Promise.resolve(),
      cleanup: () => Promise.resolve(),
    },
    challenge: 'dns-persist-01',
    persistRecords: (phase) => Promise.resolve([{ ...record, phase }]),
    ...over,
  });

  it('check-config prints the record of every CA and skips the webroot for those names', async () => {
    const asked: string[] = [];
    const base = persistDeps();
    const lines = await checkConfig(
      persistDeps({
        directories: [
          { phase: 'staging', url: 'https://s/dir' },
          { phase: 'production', url: 'https://p/dir' },
        ],
        responder: {
          ...base.responder,
          present: (d) => {
            asked.push(d);
            return Promise.resolve();
          },
        },
        persistRecords: (phase, domains) =>
          Promise.resolve(domains.map(() => ({ ...record, phase }))),
      }),
    );
    const text = lines.map((l) => `${l.what}: ${l.detail}`).join('\n');
    assert.match(
      text,
      /dns-persist-01 record \(staging CA\) for a\.test: set once: _validation-persist\.a\.test\. TXT "ca\.test; accounturi=https:\/\/127\.0\.0\.1:14000\/my-account\/1"/,
    );
    assert.match(text, /dns-persist-01 record \(production CA\)/);
    assert.deepEqual(asked, [], 'the webroot was checked for a dns-persist-01 name');
  });

  const lineOf = (lines: Awaited<ReturnType<typeof checkConfig>>) =>
    lines.find((l) => l.what.startsWith('dns-persist-01 record (staging CA)'));

  const lookups: {
    name: string;
    answers: { server: string; values?: string[]; problem?: string }[];
    warn: boolean;
    detail: RegExp;
  }[] = [
    {
      name: 'says found when every server answers the record',
      answers: [{ server: '10.0.0.1:53', values: ['other', record.value] }],
      warn: false,
      detail: /\(found in DNS\)$/,
    },
    {
      name: 'warns, naming the server, when one server lacks it',
      answers: [
        { server: '10.0.0.1:53', values: [record.value] },
        { server: '10.0.0.2:53', values: [] },
      ],
      warn: true,
      detail: /not in DNS yet: 10\.0\.0\.2:53: no TXT record there/,
    },
    {
      name: 'warns about a record for another account',
      answers: [{ server: '10.0.0.1:53', values: ['ca.test; accounturi=https://x/9'] }],
      warn: true,
      detail: /not our account/,
    },
    {
      name: "warns with the server's problem when it fails",
      answers: [{ server: '10.0.0.1:53', problem: 'REFUSED' }],
      warn: true,
      detail: /10\.0\.0\.1:53: REFUSED/,
    },
  ];
  for (const c of lookups) {
    it(`check-config ${c.name}`, async () => {
      const line = lineOf(
        await checkConfig(
          persistDeps({ lookupTxt: () => Promise.resolve(c.answers), nowS: () => 1000 }),
        ),
      );
      assert.equal(line?.ok, true);
      assert.equal(line?.warn ?? false, c.warn, line?.detail);
      assert.match(line?.detail ?? '', c.detail);
    });
  }

  it('check-config fails the line of a CA whose record cannot be known', async () => {
    const lines = await checkConfig(
      persistDeps({
        persistRecords: () => Promise.reject(new Error('lists no meta.caaIdentities')),
      }),
    );
    const bad = lines.find((l) => l.what === 'dns-persist-01 record (staging CA)');
    assert.equal(bad?.ok, false);
    assert.match(bad?.detail ?? '', /caaIdentities/);
  });

  it('/status carries the records and the page shows them, escaped', () => {
    const snap = buildStatusSnapshot(
      {
        certificates: [],
        problems: [],
        target: 'staging',
        platform: 'static',
        dnsPersist: [record],
      },
      new Date('2026-01-01T00:00:00Z'),
    );
    assert.deepEqual(snap.dnsPersist, [record]);
    const html = renderStatusPage(snap, new Date('2026-01-01T00:00:00Z'));
    assert.match(html, /data-persist-record="_validation-persist\.a\.test"/);
    assert.ok(html.includes(`&quot;ca.test; accounturi=${ACCT}&quot;`), html);
  });

  it('/status has no dnsPersist key when no certificate uses it', () => {
    const snap = buildStatusSnapshot(
      { certificates: [], problems: [], target: 'staging', platform: 'static', dnsPersist: [] },
      new Date('2026-01-01T00:00:00Z'),
    );
    assert.equal('dnsPersist' in snap, false);
  });
});
