// DNS-01 decisions (src/challenge/dns/propagation.ts, src/domain/challenges.ts,
// the leftover rule) as table tests, and the TSIG record's layout.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { isLeftover, CLUSTER_LEFTOVER_AGE_MS } from '../../src/challenge/dns/dns-responder.js';
import {
  challengeRecordName,
  followCnames,
  propagationVerdict,
  zoneFromSoaAnswer,
  type ServerAnswer,
} from '../../src/challenge/dns/propagation.js';
import { signMessage, tsigErrorOf, wireName } from '../../src/challenge/dns/tsig.js';
import { parseServer } from '../../src/challenge/dns/wire.js';
import { loadConfig } from '../../src/config/load.js';
import { challengeFor, normalizeTsigAlgorithm } from '../../src/domain/challenges.js';
import { ConfigError } from '../../src/domain/errors.js';

describe('propagationVerdict', () => {
  const A = { server: '10.0.0.1:53' };
  const B = { server: '10.0.0.2:53' };
  const cases: {
    name: string;
    expected: string[];
    answers: ServerAnswer[];
    elapsedMs: number;
    verdict: string;
    missing?: string[];
  }[] = [
    {
      name: 'is propagated when every server answers every value',
      expected: ['v1', 'v2'],
      answers: [
        { ...A, values: ['v2', 'v1'] },
        { ...B, values: ['v1', 'v2', 'other'] },
      ],
      elapsedMs: 100,
      verdict: 'Propagated',
    },
    {
      name: 'waits while one server lacks one of two values (wildcard and apex share a name)',
      expected: ['v1', 'v2'],
      answers: [
        { ...A, values: ['v1', 'v2'] },
        { ...B, values: ['v1'] },
      ],
      elapsedMs: 100,
      verdict: 'Waiting',
      missing: ['10.0.0.2:53 (value not there yet)'],
    },
    {
      name: 'counts a server that did not answer as missing, with why',
      expected: ['v1'],
      answers: [
        { ...A, values: ['v1'] },
        { ...B, problem: 'no answer within 2000 ms' },
      ],
      elapsedMs: 100,
      verdict: 'Waiting',
      missing: ['10.0.0.2:53 (no answer within 2000 ms)'],
    },
    {
      name: 'times out once the timeout has passed with a server still missing',
      expected: ['v1'],
      answers: [{ ...B, values: [], problem: 'NXDOMAIN' }],
      elapsedMs: 120_000,
      verdict: 'TimedOut',
      missing: ['10.0.0.2:53 (NXDOMAIN)'],
    },
    {
      name: 'is propagated even at the deadline when everything is there',
      expected: ['v1'],
      answers: [{ ...A, values: ['v1'] }],
      elapsedMs: 120_000,
      verdict: 'Propagated',
    },
    {
      name: 'is never propagated with no server to ask',
      expected: ['v1'],
      answers: [],
      elapsedMs: 0,
      verdict: 'Waiting',
      missing: ['no server to ask'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = propagationVerdict(c.expected, c.answers, c.elapsedMs, 120_000);
      assert.equal(v.kind, c.verdict);
      if (c.missing) assert.deepEqual(v.kind === 'Propagated' ? [] : v.missing, c.missing);
    });
  }
});

describe('challengeRecordName', () => {
  const cases: [string, string, string][] = [
    ['puts the record under _acme-challenge', 'www.example.com', '_acme-challenge.www.example.com'],
    ['drops *. from a wildcard (RFC 8555 7.1.3)', '*.example.com', '_acme-challenge.example.com'],
    ['drops a trailing dot', 'example.com.', '_acme-challenge.example.com'],
  ];
  for (const [name, input, out] of cases)
    it(name, () => assert.equal(challengeRecordName(input), out));
});

describe('followCnames', () => {
  const cname = (name: string, data: string) => ({ name, type: 'CNAME', data });
  const cases: {
    name: string;
    records: { name: string; type: string; data: string }[];
    out: string;
  }[] = [
    { name: 'stays on the name without a CNAME', records: [], out: '_acme-challenge.a.test' },
    {
      name: 'follows one CNAME to the validation zone',
      records: [cname('_acme-challenge.a.test', 'x.validation.test.')],
      out: 'x.validation.test',
    },
    {
      name: 'follows a chain, case-insensitively',
      records: [cname('_ACME-challenge.a.test.', 'b.test'), cname('b.test', 'c.test')],
      out: 'c.test',
    },
    {
      name: 'stops at a loop instead of spinning',
      records: [
        cname('_acme-challenge.a.test', 'b.test'),
        cname('b.test', '_acme-challenge.a.test'),
      ],
      out: 'b.test',
    },
    {
      name: 'ignores CNAMEs of other names',
      records: [cname('other.test', 'x.test')],
      out: '_acme-challenge.a.test',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(followCnames('_acme-challenge.a.test', c.records), c.out));
  }
});

describe('zoneFromSoaAnswer', () => {
  const soa = (name: string) => ({ name, type: 'SOA' });
  it('reads the zone from the answer at the apex', () =>
    assert.equal(zoneFromSoaAnswer([soa('example.com.')], []), 'example.com'));
  it('reads the zone from the authority section below the apex', () =>
    assert.equal(zoneFromSoaAnswer([], [soa('Example.com')]), 'example.com'));
  it('has no zone without an SOA', () => assert.equal(zoneFromSoaAnswer([], []), undefined));
});

describe('parseServer', () => {
  const cases: { name: string; text: string; host: string; port: number }[] = [
    { name: 'takes host:port', text: '127.0.0.1:5353', host: '127.0.0.1', port: 5353 },
    { name: 'gives a bare IPv4 address port 53', text: '10.0.0.53', host: '10.0.0.53', port: 53 },
    { name: 'takes [IPv6]:port', text: '[fd00::53]:5353', host: 'fd00::53', port: 5353 },
    {
      name: 'gives a bare IPv6 address (as node:dns getServers() lists one) port 53',
      text: '2001:db8::53',
      host: '2001:db8::53',
      port: 53,
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(parseServer(c.text), { host: c.host, port: c.port }));
  }
  it('refuses what is not host:port', () => assert.throws(() => parseServer('a:b:c:')));
});

describe('challengeFor', () => {
  const cases: {
    name: string;
    domains: string[];
    label?: 'http-01' | 'dns-01';
    setting: 'http-01' | 'dns-01';
    type: string;
    reason: string;
  }[] = [
    {
      name: 'uses ACME_CHALLENGE by default',
      domains: ['a.test'],
      setting: 'http-01',
      type: 'http-01',
      reason: 'Setting',
    },
    {
      name: 'lets the label override the setting',
      domains: ['a.test'],
      label: 'dns-01',
      setting: 'http-01',
      type: 'dns-01',
      reason: 'Label',
    },
    {
      name: 'always uses dns-01 for a wildcard, whatever the label says',
      domains: ['a.test', '*.a.test'],
      label: 'http-01',
      setting: 'http-01',
      type: 'dns-01',
      reason: 'Wildcard',
    },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.deepEqual(
        challengeFor({ domains: c.domains, ...(c.label && { challenge: c.label }) }, c.setting),
        { type: c.type, reason: c.reason },
      ),
    );
  }
});

describe('normalizeTsigAlgorithm', () => {
  const cases: [string, string | undefined][] = [
    ['hmac-sha256', 'hmac-sha256.'],
    ['hmac-sha256.', 'hmac-sha256.'],
    ['HMAC-SHA512', 'hmac-sha512.'],
    ['hmac-sha1.', 'hmac-sha1.'],
    ['hmac-md5.sig-alg.reg.int.', undefined],
    ['sha256', undefined],
  ];
  for (const [input, out] of cases) {
    it(`reads ${JSON.stringify(input)} as ${String(out)}`, () =>
      assert.equal(normalizeTsigAlgorithm(input), out));
  }
});

describe('isLeftover', () => {
  const now = new Date('2026-12-02T10:00:00Z');
  it('removes every recorded value when alone (no order runs before the sweep)', () =>
    assert.equal(isLeftover(now.toISOString(), now, false), true));
  it('leaves a fresh record alone in a cluster (the leader may be mid-order)', () =>
    assert.equal(isLeftover(new Date(now.getTime() - 60_000).toISOString(), now, true), false));
  it('removes a cluster record older than any order lasts', () =>
    assert.equal(
      isLeftover(new Date(now.getTime() - CLUSTER_LEFTOVER_AGE_MS).toISOString(), now, true),
      true,
    ));
  it('removes a record with an unreadable time', () =>
    assert.equal(isLeftover('x', now, true), true));
});

describe('TSIG (RFC 8945)', () => {
  const key = {
    name: 'acme-key.',
    algorithm: 'hmac-sha256.' as const,
    secret: Buffer.alloc(32, 1),
  };
  const msg = dnsPacket.encode({
    type: 'query',
    id: 0x1234,
    flags: 5 << 11,
    questions: [{ name: 'example.com', type: 'SOA', class: 'IN' }],
  });

  it('appends one TSIG record and counts it in ARCOUNT', () => {
    const signed = signMessage(msg, key, 1_700_000_000);
    assert.equal(signed.readUInt16BE(10), 1);
    const decoded = dnsPacket.decode(signed);
    const tsig = decoded.additionals?.[0];
    assert.equal(tsig?.type, 'TSIG');
    assert.equal(tsig?.name, 'acme-key');
  });

  it('MACs the message then the TSIG variables of section 4.3.3', () => {
    const signed = signMessage(msg, key, 1_700_000_000);
    const variables = Buffer.concat([
      wireName('acme-key'),
      Buffer.from([0, 255, 0, 0, 0, 0]),
      wireName('hmac-sha256'),
      Buffer.from([0, 0, 0x65, 0x53, 0xf1, 0x00]), // 1_700_000_000
      Buffer.from([0x01, 0x2c, 0, 0, 0, 0]), // fudge 300, error 0, other len 0
    ]);
    const mac = createHmac('sha256', key.secret).update(msg).update(variables).digest();
    assert.ok(signed.includes(mac), 'the MAC in the record is not the expected one');
  });

  it('reads the error field of an answer TSIG record', () => {
    const rdata = Buffer.concat([
      wireName('hmac-sha256'),
      Buffer.alloc(8),
      Buffer.from([0, 2, 0xaa, 0xbb]), // MAC of 2 bytes
      Buffer.from([0x12, 0x34, 0, 16, 0, 0]), // original id, BADSIG, other len
    ]);
    assert.equal(tsigErrorOf(rdata), 16);
  });
});

describe('DNS-01 settings', () => {
  const problems = (env: Record<string, string>): string => {
    try {
      loadConfig(env, { random: () => 0.5 });
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    assert.fail(`expected ${JSON.stringify(env)} to be refused`);
  };

  it('names everything DNS_PROVIDER=rfc2136 cannot work without', () => {
    const msg = problems({ DNS_PROVIDER: 'rfc2136' });
    for (const v of ['RFC2136_NAMESERVER', 'RFC2136_TSIG_KEY', 'RFC2136_TSIG_SECRET']) {
      assert.match(msg, new RegExp(`${v}=undefined: expected to be set with DNS_PROVIDER=rfc2136`));
    }
  });

  it('accepts the secret from RFC2136_TSIG_SECRET_FILE instead', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dns01-config-'));
    const file = join(dir, 'secret');
    writeFileSync(file, 'c2VjcmV0\n');
    const c = loadConfig({
      DNS_PROVIDER: 'rfc2136',
      RFC2136_NAMESERVER: '127.0.0.1:5353',
      RFC2136_TSIG_KEY: 'k',
      RFC2136_TSIG_SECRET_FILE: file,
    });
    assert.equal(c.rfc2136TsigSecretFile, file);
    rmSync(dir, { recursive: true });
  });

  it('names PDNS_API_URL and PDNS_API_KEY for DNS_PROVIDER=pdns, and EXEC_PATH for exec', () => {
    const pdns = problems({ DNS_PROVIDER: 'pdns' });
    assert.match(pdns, /PDNS_API_URL=undefined/);
    assert.match(pdns, /PDNS_API_KEY=undefined/);
    assert.match(problems({ DNS_PROVIDER: 'exec' }), /EXEC_PATH=undefined/);
  });

  it('refuses an unknown TSIG algorithm and lists the valid ones', () => {
    assert.match(
      problems({ RFC2136_TSIG_ALGORITHM: 'hmac-md5' }),
      /RFC2136_TSIG_ALGORITHM="hmac-md5": expected one of hmac-sha1\., hmac-sha224\./,
    );
  });

  it('never shows a bad TSIG secret or API key in the error', () => {
    const msg = problems({ RFC2136_TSIG_SECRET: 'not base64 !!secret-value' });
    assert.ok(!msg.includes('secret-value'), msg);
    assert.match(msg, /RFC2136_TSIG_SECRET="\*\*\*"/);
  });

  it('refuses DNS_RESOLVERS entries that are not host:port', () => {
    assert.match(
      problems({ DNS_RESOLVERS: '10.0.0.53' }),
      /DNS_RESOLVERS="10\.0\.0\.53": expected/,
    );
  });
});
