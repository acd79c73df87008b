import assert from 'node:assert/strict';

import {
  isValidCertName,
  normalizeHostname,
  quote,
  parseDomainList,
  type DomainListProblemCode,
  type HostnameProblemCode,
} from '../../src/domain/hostnames.js';

const SOURCE = 'env:DOMAINS';

describe('normalizeHostname', () => {
  const label = (n: number): string => 'a'.repeat(n);
  // 4 labels of 63 plus 3 dots = 255; trim to exactly the size wanted.
  const nameOfLength = (n: number): string =>
    [label(63), label(63), label(63), label(63)].join('.').slice(0, n - 4) + '.com';

  const accepted: { name: string; input: string; hostname: string }[] = [
    {
      name: 'keeps a plain lowercase name as it is',
      input: 'example.com',
      hostname: 'example.com',
    },
    { name: 'lowercases an uppercase name', input: 'WWW.Example.COM', hostname: 'www.example.com' },
    { name: 'drops one trailing dot', input: 'example.com.', hostname: 'example.com' },
    { name: 'trims surrounding whitespace', input: '  example.com\n', hostname: 'example.com' },
    {
      name: 'converts a unicode name to punycode',
      input: 'bücher.example',
      hostname: 'xn--bcher-kva.example',
    },
    {
      name: 'lowercases a unicode name before converting it',
      input: 'BÜCHER.example',
      hostname: 'xn--bcher-kva.example',
    },
    {
      name: 'keeps a name that is already punycode',
      input: 'xn--bcher-kva.example',
      hostname: 'xn--bcher-kva.example',
    },
    { name: 'converts an emoji domain to punycode', input: '💩.la', hostname: 'xn--ls8h.la' },
    { name: 'maps fullwidth letters to ASCII', input: 'ａｂｃ.com', hostname: 'abc.com' },
    {
      name: 'accepts hyphens inside a label',
      input: 'my-shop.example',
      hostname: 'my-shop.example',
    },
    {
      name: 'accepts digits in labels other than the last',
      input: '123.example',
      hostname: '123.example',
    },
    {
      name: 'accepts a label of exactly 63 characters',
      input: `${label(63)}.com`,
      hostname: `${label(63)}.com`,
    },
    {
      name: 'accepts a name of exactly 253 characters',
      input: nameOfLength(253),
      hostname: nameOfLength(253),
    },
    {
      name: 'accepts a wildcard and normalizes the rest like any hostname',
      input: '*.Bücher.Example.',
      hostname: '*.xn--bcher-kva.example',
    },
  ];

  for (const c of accepted) {
    it(c.name, () => {
      assert.deepEqual(normalizeHostname(c.input), { ok: true, hostname: c.hostname });
    });
  }

  const refused: { name: string; input: string; code: HostnameProblemCode }[] = [
    { name: 'rejects an empty string', input: '', code: 'empty' },
    { name: 'rejects a string of blanks', input: '   ', code: 'empty' },
    { name: 'rejects a lone dot', input: '.', code: 'empty' },
    {
      name: 'rejects a star that is only part of the first label',
      input: 'a*.example.com',
      code: 'wildcard',
    },
    {
      name: 'rejects a wildcard of a wildcard',
      input: '*.*.example.com',
      code: 'wildcard',
    },
    {
      name: 'rejects a wildcard whose rest is not a hostname',
      input: '*.exa mple.com',
      code: 'bad-character',
    },
    {
      name: 'rejects a star in the middle of a name as a wildcard',
      input: 'a.*.example.com',
      code: 'wildcard',
    },
    { name: 'rejects an IPv4 address with a trailing dot', input: '1.2.3.4.', code: 'ip-literal' },
    { name: 'rejects a bracketed IPv6 address', input: '[::1]', code: 'ip-literal' },
    {
      name: 'rejects a name URL parsers read as an IPv4 address',
      input: '0x7f.1',
      code: 'ip-literal',
    },
    {
      name: 'rejects fullwidth digits that map to an IPv4 address',
      input: '１.２.３.４',
      code: 'ip-literal',
    },
    { name: 'rejects a space inside the name', input: 'a b.com', code: 'bad-character' },
    { name: 'rejects a NUL byte', input: 'a\u0000b.com', code: 'bad-character' },
    { name: 'rejects a tab inside the name', input: 'a\tb.com', code: 'bad-character' },
    { name: 'rejects a path traversal', input: '../etc', code: 'path-syntax' },
    { name: 'rejects a slash', input: 'example.com/x', code: 'path-syntax' },
    { name: 'rejects a backslash', input: 'example\\com', code: 'path-syntax' },
    { name: 'rejects a port', input: 'example.com:443', code: 'path-syntax' },
    { name: 'rejects a URL', input: 'http://example.com', code: 'path-syntax' },
    { name: 'rejects user info', input: 'user@example.com', code: 'path-syntax' },
    {
      name: 'rejects percent-encoding instead of decoding it to another name',
      input: 'ex%41mple.com',
      code: 'path-syntax',
    },
    { name: 'rejects two dots in a row', input: 'a..example.com', code: 'path-syntax' },
    { name: 'rejects two trailing dots', input: 'example.com..', code: 'path-syntax' },
    { name: 'rejects a name of 254 characters', input: nameOfLength(254), code: 'too-long' },
    { name: 'rejects a label of 64 characters', input: `${label(64)}.com`, code: 'label-too-long' },
    { name: 'rejects a leading dot', input: '.example.com', code: 'label-empty' },
    { name: 'rejects a label starting with a hyphen', input: '-a.com', code: 'label-hyphen' },
    { name: 'rejects a label ending with a hyphen', input: 'a-.com', code: 'label-hyphen' },
    { name: 'rejects an underscore', input: 'a_b.com', code: 'bad-character' },
    {
      name: 'rejects punctuation URL parsers let through',
      input: 'ex!ample.com',
      code: 'bad-character',
    },
    {
      name: 'rejects "--" in positions 3-4 outside punycode',
      input: 'ab--cd.com',
      code: 'reserved-label',
    },
    { name: 'rejects invalid punycode', input: 'xn--zz.com', code: 'idn-invalid' },
    { name: 'rejects an A-label too short to decode', input: 'xn--a.com', code: 'idn-invalid' },
    {
      name: 'rejects an A-label that decodes to plain ASCII',
      input: 'xn--abc-.com',
      code: 'idn-invalid',
    },
    {
      name: 'rejects a right-to-left override character',
      input: 'a\u202eb.com',
      code: 'idn-invalid',
    },
    {
      name: 'rejects localhost because public CAs do not issue for single labels',
      input: 'localhost',
      code: 'single-label',
    },
    {
      name: 'rejects a single label with a trailing dot',
      input: 'intranet.',
      code: 'single-label',
    },
    { name: 'rejects an all-numeric top-level label', input: 'example.123', code: 'numeric-tld' },
    { name: 'rejects a hexadecimal top-level label', input: 'example.0x1', code: 'numeric-tld' },
  ];

  for (const c of refused) {
    it(c.name, () => {
      const result = normalizeHostname(c.input);
      assert.equal(result.ok, false, `accepted ${JSON.stringify(c.input)}`);
      if (result.ok) return;
      assert.equal(result.code, c.code, result.message);
      // Named as quote() shows it: JSON-quoted, invisible characters escaped.
      assert.ok(
        result.message.includes(quote(c.input)),
        `message does not name the input: ${result.message}`,
      );
    });
  }

  it('says in the message how a wildcard is written', () => {
    const result = normalizeHostname('www.*.example.com');
    assert.ok(!result.ok && result.message.includes('*.example.com'), JSON.stringify(result));
  });
});

describe('isValidCertName', () => {
  const cases: { name: string; input: string; valid: boolean }[] = [
    { name: 'accepts a hostname', input: 'www.example.com', valid: true },
    {
      name: 'accepts letters, digits, dot, underscore and hyphen',
      input: 'shop_2-eu.v1',
      valid: true,
    },
    { name: 'accepts 200 characters', input: 'a'.repeat(200), valid: true },
    { name: 'rejects 201 characters', input: 'a'.repeat(201), valid: false },
    { name: 'rejects an empty name', input: '', valid: false },
    {
      name: 'rejects "..", which would climb out of the state directory',
      input: 'a..b',
      valid: false,
    },
    { name: 'rejects a leading dot', input: '.hidden', valid: false },
    { name: 'rejects a slash', input: 'a/../../../foo', valid: false },
    { name: 'rejects uppercase', input: 'Shop', valid: false },
    { name: "accepts a wildcard's own name, _ for *", input: '_.example.com', valid: true },
    { name: 'rejects _ first without the dot after it', input: '_example.com', valid: false },
    { name: 'rejects _. climbing out with ..', input: '_..', valid: false },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(isValidCertName(c.input), c.valid));
  }
});

describe('parseDomainList', () => {
  const spec = (name: string, ...domains: string[]) => ({ name, domains, source: SOURCE });

  const cases: {
    name: string;
    raw: string;
    specs: ReturnType<typeof spec>[];
    problems?: { value: string; code: DomainListProblemCode }[];
  }[] = [
    { name: 'returns nothing for an empty list', raw: '', specs: [] },
    { name: 'returns nothing for blanks and line breaks only', raw: ' \n \n', specs: [] },
    {
      name: 'makes one certificate per comma-separated hostname, named after it',
      raw: 'a.example.com, b.example.com',
      specs: [spec('a.example.com', 'a.example.com'), spec('b.example.com', 'b.example.com')],
    },
    {
      name: 'accepts line breaks as separators',
      raw: 'a.example.com\r\nb.example.com\n',
      specs: [spec('a.example.com', 'a.example.com'), spec('b.example.com', 'b.example.com')],
    },
    {
      name: 'ignores trailing commas at line ends and blank lines',
      raw: 'a.example.com,\n\nb.example.com,',
      specs: [spec('a.example.com', 'a.example.com'), spec('b.example.com', 'b.example.com')],
    },
    {
      name: 'reports an empty item between two commas and keeps the rest',
      raw: 'a.example.com,,b.example.com, ,c.example.com',
      specs: [
        spec('a.example.com', 'a.example.com'),
        spec('b.example.com', 'b.example.com'),
        spec('c.example.com', 'c.example.com'),
      ],
      problems: [
        { value: '', code: 'empty' },
        { value: '', code: 'empty' },
      ],
    },
    {
      name: 'joins hostnames with + into one multi-SAN certificate named after the first',
      raw: 'www.example.com+example.com',
      specs: [spec('www.example.com', 'www.example.com', 'example.com')],
    },
    {
      name: 'takes an explicit certificate name before =',
      raw: 'shop=shop.example.com+cdn.example.com',
      specs: [spec('shop', 'shop.example.com', 'cdn.example.com')],
    },
    {
      name: 'ignores whitespace around = and +',
      raw: ' shop = shop.example.com + cdn.example.com ',
      specs: [spec('shop', 'shop.example.com', 'cdn.example.com')],
    },
    {
      name: 'normalizes hostnames and names the certificate after the normalized first one',
      raw: 'Bücher.Example.+www.bücher.example',
      specs: [spec('xn--bcher-kva.example', 'xn--bcher-kva.example', 'www.xn--bcher-kva.example')],
    },
    {
      name: 'collapses a hostname repeated within one certificate, keeping the first position',
      raw: 'example.com+www.example.com+EXAMPLE.com.',
      specs: [spec('example.com', 'example.com', 'www.example.com')],
    },
    {
      name: 'skips a whole multi-SAN entry with one bad hostname and keeps the good entries',
      raw: 'a.example.com,shop=shop.example.com+*.*.example.com,b.example.com',
      specs: [spec('a.example.com', 'a.example.com'), spec('b.example.com', 'b.example.com')],
      problems: [{ value: 'shop=shop.example.com+*.*.example.com', code: 'wildcard' }],
    },
    {
      name: 'names an unnamed wildcard entry after it, with _ for *',
      raw: '*.example.com+example.com',
      specs: [spec('_.example.com', '*.example.com', 'example.com')],
    },
    {
      name: 'keeps the name a wildcard entry gives',
      raw: 'wild=*.Example.com+example.com',
      specs: [spec('wild', '*.example.com', 'example.com')],
    },
    {
      name: 'reports a bad single hostname and keeps the others',
      raw: 'localhost,a.example.com',
      specs: [spec('a.example.com', 'a.example.com')],
      problems: [{ value: 'localhost', code: 'single-label' }],
    },
    {
      name: 'reports an empty hostname between two + signs',
      raw: 'a.example.com++b.example.com',
      specs: [],
      problems: [{ value: 'a.example.com++b.example.com', code: 'empty' }],
    },
    {
      name: 'reports the same hostname listed twice as a duplicate name; the first wins',
      raw: 'a.example.com,A.example.com',
      specs: [spec('a.example.com', 'a.example.com')],
      problems: [{ value: 'A.example.com', code: 'duplicate-name' }],
    },
    {
      name: 'reports a second entry with the same explicit name; the first wins',
      raw: 'shop=a.example.com,shop=b.example.com',
      specs: [spec('shop', 'a.example.com')],
      problems: [{ value: 'shop=b.example.com', code: 'duplicate-name' }],
    },
    {
      name: 'reports a certificate name that could escape the state directory',
      raw: '../../etc=a.example.com,b.example.com',
      specs: [spec('b.example.com', 'b.example.com')],
      problems: [{ value: '../../etc=a.example.com', code: 'bad-name' }],
    },
    {
      name: 'reports an empty certificate name',
      raw: '=a.example.com',
      specs: [],
      problems: [{ value: '=a.example.com', code: 'bad-name' }],
    },
    {
      name: 'reports a name with no hostnames',
      raw: 'shop=',
      specs: [],
      problems: [{ value: 'shop=', code: 'empty' }],
    },
    {
      name: 'asks for an explicit name when the first hostname is too long to be one',
      raw: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(20)}.com`,
      specs: [],
      problems: [
        {
          value: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(20)}.com`,
          code: 'bad-name',
        },
      ],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const result = parseDomainList(c.raw, SOURCE);
      assert.deepEqual(result.specs, c.specs);
      assert.deepEqual(
        result.problems.map((p) => ({ value: p.value, code: p.code })),
        c.problems ?? [],
        result.problems.map((p) => p.message).join('\n'),
      );
      for (const p of result.problems) assert.equal(p.source, SOURCE);
    });
  }

  it('hints at commas when hostnames are separated by spaces', () => {
    const { problems } = parseDomainList('a.example.com b.example.com', SOURCE);
    assert.equal(problems.length, 1);
    assert.match(problems[0]?.message ?? '', /separate entries with commas/);
  });

  it('names the entry and the bad hostname in the problem message', () => {
    const { problems } = parseDomainList('x=a.example.com+a_b.example.com', SOURCE);
    assert.match(
      problems[0]?.message ?? '',
      /env:DOMAINS: entry "x=a\.example\.com\+a_b\.example\.com"/,
    );
    assert.match(problems[0]?.message ?? '', /hostname "a_b\.example\.com"/);
  });

  it('never throws, whatever it is given', () => {
    for (const raw of [
      '=',
      '+',
      ',',
      '==',
      '=+=',
      '\u0000',
      'a=b=c',
      '[',
      '%%',
      '*'.repeat(1000),
    ]) {
      assert.doesNotThrow(() => parseDomainList(raw, SOURCE), raw);
    }
  });
});

describe('messages about hostile hostnames', () => {
  it('shows a right-to-left override as an escape, so it cannot reverse a log line', () => {
    const r = normalizeHostname('evil\u202emoc.example.com');
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.doesNotMatch(r.message, /\u202e/);
      assert.match(r.message, /\\u202e/);
    }
  });
  it('cuts a one-megabyte input to a readable length and says how long it was', () => {
    const r = normalizeHostname('a'.repeat(1_000_000));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.ok(r.message.length < 500, `${r.message.length} characters`);
      assert.match(r.message, /\(1000000 characters\)/);
    }
  });
});
