import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ariCertId, serialContentHex } from '../../src/acme/ari-cert-id.js';
import {
  ariRecheckSeconds,
  chooseRenewalTime,
  parseRenewalInfo,
  sameWindow,
} from '../../src/lifecycle/ari.js';

const H = 3600_000;
const T0 = new Date('2026-06-01T00:00:00Z');
const at = (hours: number) => new Date(T0.getTime() + hours * H);

describe('ARI: the CertID (RFC 9773 section 4.1)', () => {
  const serials: [string, string, string][] = [
    [
      'keeps the leading zero of a serial whose high bit is set (the RFC example)',
      '87654321',
      '0087654321',
    ],
    ['adds nothing to a serial whose high bit is clear', '7f01', '7f01'],
    ['pads an odd number of hex digits', 'abc', '0abc'],
    ['accepts the sign byte when it is already there', '0087654321', '0087654321'],
    ['keeps a zero serial as one byte', '00', '00'],
  ];
  for (const [name, hex, want] of serials)
    it(name, () => assert.equal(serialContentHex(hex), want));

  it('is AKI keyIdentifier.serial in base64url, for a certificate signed by openssl', function () {
    this.timeout(20_000);
    const dir = mkdtempSync(join(tmpdir(), 'ari-'));
    try {
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      run(
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.pem',
        '-subj',
        '/CN=ca',
        '-days',
        '1',
      );
      run(
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'l.key',
        '-out',
        'l.csr',
        '-subj',
        '/CN=leaf',
      );
      writeFileSync(join(dir, 'ext'), 'authorityKeyIdentifier=keyid\n');
      run(
        'x509',
        '-req',
        '-in',
        'l.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-set_serial',
        '0x87654321',
        '-extfile',
        'ext',
        '-out',
        'leaf.pem',
        '-days',
        '1',
      );
      const ski = execFileSync(
        'openssl',
        ['x509', '-in', 'ca.pem', '-noout', '-ext', 'subjectKeyIdentifier'],
        { cwd: dir },
      )
        .toString()
        .split('\n')[1]!
        .trim()
        .replace(/:/g, '');
      const id = ariCertId(readFileSync(join(dir, 'leaf.pem'), 'utf8'));
      assert.equal(id, `${Buffer.from(ski, 'hex').toString('base64url')}.AIdlQyE`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ARI: reading a renewalInfo answer', () => {
  const good = { suggestedWindow: { start: '2026-06-01T00:00:00Z', end: '2026-06-02T00:00:00Z' } };
  const cases: { name: string; body: unknown; problem?: RegExp; url?: string }[] = [
    { name: 'accepts a window and no explanation', body: good },
    {
      name: 'keeps an https explanationURL',
      body: { ...good, explanationURL: 'https://ca.test/incident' },
      url: 'https://ca.test/incident',
    },
    {
      name: 'drops an explanationURL that is not http(s)',
      body: { ...good, explanationURL: 'javascript:alert(1)' },
    },
    {
      name: 'drops an explanationURL with a terminal escape in it (it is shown as sent)',
      body: { ...good, explanationURL: 'https://ca.test/\u001b[2Jincident' },
    },
    {
      name: 'drops an explanationURL with a space or a line break in it',
      body: { ...good, explanationURL: 'https://ca.test/a b\nreason=Valid' },
    },
    {
      name: 'drops an explanationURL longer than 2048 characters',
      body: { ...good, explanationURL: `https://ca.test/${'a'.repeat(2048)}` },
    },
    { name: 'refuses a string', body: 'not json', problem: /not a JSON object/ },
    { name: 'refuses null', body: null, problem: /not a JSON object/ },
    { name: 'refuses an array', body: [good], problem: /not a JSON object/ },
    { name: 'refuses an answer without a window', body: {}, problem: /no suggestedWindow/ },
    {
      name: 'refuses a start that is not a time',
      body: { suggestedWindow: { start: 'soon', end: '2026-06-02T00:00:00Z' } },
      problem: /start is not/,
    },
    {
      name: 'refuses an end that is a number',
      body: { suggestedWindow: { start: '2026-06-01T00:00:00Z', end: 17 } },
      problem: /end is not/,
    },
    {
      name: 'refuses a window that ends before it starts',
      body: { suggestedWindow: { start: '2026-06-02T00:00:00Z', end: '2026-06-01T00:00:00Z' } },
      problem: /not after its start/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = parseRenewalInfo(c.body);
      if (c.problem) {
        assert.equal(r.ok, false);
        assert.match((r as { problem: string }).problem, c.problem);
        return;
      }
      assert.equal(r.ok, true);
      const info = (r as Extract<typeof r, { ok: true }>).info;
      assert.deepEqual(info.window, { start: T0, end: at(24) });
      assert.equal(info.explanationUrl, c.url);
    });
  }
});

describe('ARI: when to ask again', () => {
  const cases: [string, number | undefined, number][] = [
    ['asks again after 6 hours when the CA sent no Retry-After', undefined, 21600],
    ['follows a Retry-After inside the bounds', 3600, 3600],
    ['never asks more often than every minute', 1, 60],
    ['never waits more than 6 hours', 86400, 21600],
    ['treats a nonsense value as none', NaN, 21600],
  ];
  for (const [name, given, want] of cases)
    it(name, () => assert.equal(ariRecheckSeconds(given), want));
});

describe('ARI: choosing the renewal time', () => {
  const ninetyDays = { notBefore: T0, notAfter: at(90 * 24) };
  const cases: {
    name: string;
    window: [number, number];
    cert?: { notBefore: Date; notAfter: Date };
    random: number;
    want: number;
  }[] = [
    {
      name: 'takes the start of the window for a draw of 0',
      window: [1400, 1448],
      random: 0,
      want: 1400,
    },
    {
      name: 'takes the middle of the window for a draw of one half',
      window: [1400, 1448],
      random: 0.5,
      want: 1424,
    },
    {
      name: 'never goes past five sixths of the lifetime, for a window that runs to expiry',
      window: [0, 6 * 24],
      cert: { notBefore: T0, notAfter: at(6 * 24) },
      random: 0.999999,
      want: 120,
    },
    {
      name: 'collapses a window that starts after the safe margin to the latest safe time',
      window: [5.9 * 24, 7 * 24],
      cert: { notBefore: T0, notAfter: at(6 * 24) },
      random: 0.3,
      want: 120,
    },
    {
      name: 'keeps a window in the past in the past: renew at the next pass',
      window: [-48, -47],
      random: 0.5,
      want: -47.5,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = chooseRenewalTime(
        { start: at(c.window[0]), end: at(c.window[1]) },
        c.cert ?? ninetyDays,
        () => c.random,
      );
      assert.ok(
        Math.abs(got.getTime() - at(c.want).getTime()) < 1000,
        `${got.toISOString()} vs ${at(c.want).toISOString()}`,
      );
    });
  }
  it('keeps a time drawn from the same window, and re-draws for a new one', () => {
    const w = { start: at(1), end: at(2) };
    assert.equal(sameWindow(w, { start: at(1), end: at(2) }), true);
    assert.equal(sameWindow(w, { start: at(1), end: at(3) }), false);
    assert.equal(sameWindow(undefined, w), false);
  });
});
