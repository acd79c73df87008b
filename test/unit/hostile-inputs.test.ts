/**
 * Hostile input (issue "Reliability", item 6): labels and env values with
 * spaces, unicode, `*`, IP literals, overlong names, empty items,
 * duplicates, `../`, NUL bytes; ACME tokens that are not base64url (a
 * malicious or broken CA); huge or malformed platform responses.
 *
 * One table. Every row goes through the real code path of its surface and
 * checks three things: the specific error (code, and where it helps, words
 * of the message), that nothing else was affected (the good entries or
 * services beside it still come through, the client still works), and,
 * for surfaces that touch the disk, that nothing was written outside
 * WEBROOT/STATE_DIR.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startFakeCattle, type FakeCattle } from '../../devenv/fake-cattle.js';
import { WebrootResponder } from '../../src/challenge/webroot-responder.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { SidecarError, type ErrorCode } from '../../src/domain/errors.js';
import { parseDomainList } from '../../src/domain/hostnames.js';
import type { CertBundle } from '../../src/domain/types.js';
import type { Discovery } from '../../src/platform/platform.js';
import {
  CattleClient,
  type CattleClientOptions,
} from '../../src/platform/rancher/cattle-client.js';
import {
  DENT_LABEL,
  DOMAINS_LABEL,
  RancherPlatform,
} from '../../src/platform/rancher/rancher-platform.js';
import { Discoverer } from '../../src/reconcile/discoverer.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { createLogger, silentLogger } from '../../src/util/log.js';

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

type Surface =
  | 'DOMAINS'
  | 'Dent label'
  | 'domains label'
  | 'ACME token'
  | 'store key'
  | 'certificate name'
  | 'platform response';

interface Expected {
  /** The problem or error code; null: accepted (or, for platform items, ignored) without error. */
  readonly code: string | null;
  readonly messageIncludes?: string;
  /** Hostnames this input still yields as certificates (trimmed, lowercased, punycode...). */
  readonly accepted?: readonly string[];
  /** An untrusted value echoed in a message is cut to a readable length. */
  readonly maxMessageLength?: number;
}

/** What the fake Rancher API answers for one platform row (the `services` collection). */
type PlatformResponse = (ctx: ResponseContext) => void;

interface Row {
  readonly name: string;
  readonly surface: Surface;
  readonly input: string | PlatformResponse;
  readonly expected: Expected;
  /**
   * Run the client in a child process of its own. nock, which other unit
   * files load into this mocha process, replaces node's HTTP client, and
   * with it the socket timeout semantics a row may be about.
   */
  readonly ownProcess?: boolean;
  /**
   * A client timeout of its own: the shared one (300 ms, so rows about
   * hanging servers stay fast) is an overall deadline, and a row about
   * something else (a body's size) must not end as a timeout on a busy machine.
   */
  readonly timeoutMs?: number;
}

// --- hostnames: DOMAINS, the Dent label and the io.acme-sidecar.domains label

interface HostnameCase {
  /** Completes "... in DOMAINS" into a sentence. */
  readonly what: string;
  readonly input: string;
  readonly expected: Expected;
  /** Where the Dent label (commas only, no `name=` or `+` syntax) differs. */
  readonly dent?: Expected;
}

const label = (n: number, c = 'a'): string => c.repeat(n);
/** A multi-label hostname of exactly n characters ending in `.com`. */
function nameOfLength(n: number): string {
  const labels: string[] = [];
  let left = n - 4; // ".com"
  while (left > 0) {
    const take = Math.min(left, 50);
    labels.push(label(take, 'h'));
    left -= take + 1;
  }
  const name =
    labels
      .join('.')
      .slice(0, n - 4)
      .replace(/\.$/, 'x') + '.com';
  assert.equal(name.length, n);
  return name;
}
const MEGABYTE_NAME = label(1024 * 1024, 'm') + '.example.com';

const HOSTNAME_CASES: readonly HostnameCase[] = [
  {
    what: 'refuses a hostname with a space inside',
    input: 'bad host.example.com',
    expected: { code: 'bad-character', messageIncludes: 'whitespace' },
  },
  {
    what: 'trims leading and trailing spaces and tabs and accepts the name',
    input: ' \t padded.example.com \t ',
    expected: { code: null, accepted: ['padded.example.com'] },
  },
  {
    what: 'converts an international name to punycode',
    input: 'bücher.example',
    expected: { code: null, accepted: ['xn--bcher-kva.example'] },
  },
  {
    what: 'converts an emoji name to punycode, as registries that allow them do',
    input: '💩.la',
    expected: { code: null, accepted: ['xn--ls8h.la'] },
  },
  {
    what: 'refuses a name hiding a right-to-left override (U+202E)',
    input: 'exa\u202Eelpm.com',
    expected: { code: 'idn-invalid' },
  },
  {
    what: 'refuses a name hiding a zero-width joiner (U+200D)',
    input: 'pay\u200Dpal.example.com',
    expected: { code: 'idn-invalid' },
  },
  {
    what: 'refuses a lone asterisk as a wildcard',
    input: '*',
    expected: { code: 'wildcard', messageIncludes: '*.example.com' },
  },
  {
    what: 'refuses a wildcard of a wildcard',
    input: '*.*.x.com',
    expected: { code: 'wildcard', messageIncludes: 'whole first label' },
  },
  {
    what: 'refuses a star inside a label',
    input: 'a*.x.com',
    expected: { code: 'wildcard', messageIncludes: 'whole first label' },
  },
  {
    what: 'refuses a wildcard of a single label',
    input: '*.com',
    expected: { code: 'single-label', messageIncludes: 'in the wildcard' },
  },
  {
    what: 'accepts an IPv4 address as an ip identifier named after it',
    input: '192.0.2.1',
    expected: { code: null, accepted: ['192.0.2.1'] },
  },
  {
    what: 'accepts an IPv6 address, named with "-" for ":"',
    input: '2001:DB8:0::1',
    expected: { code: null, accepted: ['2001-db8--1'] },
  },
  {
    what: 'refuses a bracketed IPv6 address, naming the bare form',
    input: '[2001:db8::1]',
    expected: { code: 'ip-literal', messageIncludes: 'write it bare: 2001:db8::1' },
  },
  {
    what: 'refuses an IPv6 address with a zone id',
    input: 'fe80::1%eth0',
    expected: { code: 'ip-literal', messageIncludes: 'zone id' },
  },
  {
    what: 'refuses an IPv4 address with leading zeros (octal to some parsers)',
    input: '010.0.0.1',
    expected: { code: 'ip-literal', messageIncludes: 'leading zeros' },
  },
  {
    what: 'refuses a shorthand hex IPv4 address that URL parsers read as 127.0.0.1',
    input: '0x7f.1',
    expected: { code: 'ip-literal', messageIncludes: 'write the address as 127.0.0.1' },
  },
  {
    what: 'refuses a 300-character name, saying the length and the limit',
    input: nameOfLength(300),
    expected: { code: 'too-long', messageIncludes: 'is 300 characters long; the limit is 253' },
  },
  {
    what: 'refuses a name with a 64-character label',
    input: `${label(64)}.example.com`,
    expected: { code: 'label-too-long', messageIncludes: 'label of 64 characters' },
  },
  {
    what: 'refuses a valid 230-character hostname as a certificate name and says to give one',
    input: nameOfLength(230),
    expected: { code: 'bad-name', messageIncludes: 'name=' },
    // The Dent label has no `name=` syntax: the hostname is the name, and it cannot be one.
    dent: { code: 'bad-name' },
  },
  {
    what: 'reports an empty item between two commas',
    input: '',
    expected: { code: 'empty', messageIncludes: 'empty entry between two commas' },
  },
  {
    what: 'keeps the first of two identical entries and reports the second',
    input: 'dup.example.com, dup.example.com',
    expected: { code: 'duplicate-name', accepted: ['dup.example.com'] },
  },
  {
    what: 'refuses a path traversal to /etc/passwd',
    input: '../etc/passwd',
    expected: { code: 'path-syntax', messageIncludes: 'give the bare hostname' },
  },
  {
    what: 'refuses a bare "..": it would name the parent directory',
    input: '..',
    expected: { code: 'path-syntax' },
  },
  {
    what: 'refuses a slash',
    input: 'a/b.example.com',
    expected: { code: 'path-syntax' },
  },
  {
    what: 'refuses a backslash',
    input: 'a\\b.example.com',
    expected: { code: 'path-syntax' },
  },
  {
    what: 'refuses a NUL byte',
    input: 'nul\0.example.com',
    expected: { code: 'bad-character', messageIncludes: 'control character' },
  },
  {
    what: 'splits a CR/LF header injection at the line break (DOMAINS syntax) and refuses the injected part',
    input: 'crlf.example.com\r\nX-Evil: 1',
    expected: { code: 'bad-character', messageIncludes: 'X-Evil', accepted: ['crlf.example.com'] },
    dent: { code: 'bad-character', messageIncludes: 'control character' },
  },
  {
    what: 'refuses a percent-encoded ".." instead of decoding it',
    input: '%2e%2e',
    expected: { code: 'path-syntax' },
  },
  {
    what: 'refuses a shell command substitution',
    input: '$(id).com',
    expected: { code: 'bad-character', messageIncludes: 'a-z, 0-9' },
  },
  {
    what: 'refuses backticks',
    input: '`id`.com',
    expected: { code: 'bad-character' },
  },
  {
    what: 'refuses a semicolon and a command',
    input: 'a;rm -rf /.com',
    expected: { code: 'bad-character' },
  },
  {
    what: 'refuses a label ending in a hyphen',
    input: 'end-.example.com',
    expected: { code: 'label-hyphen' },
  },
  {
    what: 'refuses a name starting with an empty label',
    input: '.lead.example.com',
    expected: { code: 'label-empty' },
  },
  {
    what: 'refuses "--" in positions 3-4 outside punycode',
    input: 'ab--cd.example.com',
    expected: { code: 'reserved-label', messageIncludes: 'IDNA' },
  },
  {
    what: 'lowercases an uppercase name',
    input: 'UPPER.Example.COM',
    expected: { code: null, accepted: ['upper.example.com'] },
  },
  {
    what: 'drops one trailing dot',
    input: 'trailing.example.com.',
    expected: { code: null, accepted: ['trailing.example.com'] },
  },
  {
    what: 'refuses localhost as a single label',
    input: 'localhost',
    expected: { code: 'single-label' },
  },
  {
    what: 'refuses a single-label intranet name',
    input: 'intranet',
    expected: { code: 'single-label', messageIncludes: 'registered domain' },
  },
  {
    what: 'refuses an all-numeric top-level label',
    input: 'host.123',
    expected: { code: 'numeric-tld' },
  },
  {
    what: 'refuses a host:port',
    input: 'port.example.com:443',
    expected: { code: 'path-syntax' },
  },
  {
    what: 'refuses userinfo in front of the name',
    input: 'user@at.example.com',
    expected: { code: 'path-syntax' },
  },
  {
    what: 'refuses a certificate name with a path traversal',
    input: '../../etc=named.example.com',
    expected: { code: 'bad-name', messageIncludes: 'no ".."' },
    dent: { code: 'path-syntax' },
  },
  {
    what: 'refuses an empty certificate name before "="',
    input: '=nameless.example.com',
    expected: { code: 'bad-name' },
    dent: { code: 'bad-character' },
  },
  {
    what: 'refuses a trailing "+" that adds an empty hostname',
    input: 'plus.example.com+',
    expected: { code: 'empty' },
    dent: { code: 'bad-character' },
  },
  {
    what: 'refuses a one-megabyte name with a message of readable length',
    input: MEGABYTE_NAME,
    expected: { code: 'too-long', maxMessageLength: 2000 },
  },
];

function hostnameRows(surface: 'DOMAINS' | 'Dent label' | 'domains label'): Row[] {
  return HOSTNAME_CASES.map((c) => ({
    name: `${c.what}, in the ${surface}`,
    surface,
    input: c.input,
    expected: surface === 'Dent label' ? (c.dent ?? c.expected) : c.expected,
  }));
}

// --- ACME tokens (RFC 8555 section 8.3: base64url, no padding)

const A16 = 'A'.repeat(16);
const tokenRow = (what: string, input: string, expected: Partial<Expected> = {}): Row => ({
  name: `refuses a challenge token ${what} and writes nothing`,
  surface: 'ACME token',
  input,
  expected: { code: 'ACME_BAD_TOKEN', messageIncludes: 'not base64url', ...expected },
});
const TOKEN_ROWS: Row[] = [
  tokenRow('that climbs out of the webroot with ../', '../../../../tmp/pwned-by-ca'),
  tokenRow('that is ".."', '..'),
  tokenRow('with a slash inside', `${A16}/${A16}`),
  tokenRow('that is an absolute path', '/etc/passwd'),
  tokenRow('with backslashes', `${A16}\\..\\${A16}`),
  tokenRow('with a NUL byte', `${A16}\0.txt`),
  tokenRow('with CR/LF', `${A16}\r\nX-Evil: 1`),
  tokenRow('with base64 padding', `${A16}AA==`),
  tokenRow('in standard base64 (+ and /)', `${A16}+${A16}`),
  tokenRow('that is empty', ''),
  tokenRow('shorter than 16 characters', 'A'.repeat(15)),
  tokenRow('longer than 256 characters', 'A'.repeat(257)),
  tokenRow('with non-ASCII letters', `${A16}Ä`),
  tokenRow('with surrounding spaces', ` ${A16} `),
  tokenRow('that is percent-encoded', `%2e%2e%2f${A16}`),
  tokenRow('that is a dot file', `.${A16}`),
  tokenRow('with shell syntax', `$(id)${A16}`),
  tokenRow('of one megabyte, quoting only its start', 'A'.repeat(1024 * 1024) + '/', {
    maxMessageLength: 200,
  }),
];

// --- store keys (FsCertStore) and certificate names (LiveDir)

const keyRow = (what: string, input: string): Row => ({
  name: `refuses a store key ${what}`,
  surface: 'store key',
  input,
  expected: { code: 'STORE_KEY_INVALID', messageIncludes: 'invalid store key' },
});
const STORE_ROWS: Row[] = [
  keyRow('that climbs out with ../', '../escape'),
  keyRow('with ../ in the middle', 'certs/../../escape'),
  keyRow('that is an absolute path', '/etc/passwd'),
  keyRow('that is ".."', '..'),
  keyRow('with an empty segment', 'certs//x'),
  keyRow('ending in a slash', 'certs/x/'),
  keyRow('that is empty', ''),
  keyRow('that is a dot file', '.hidden'),
  keyRow('inside the lock directory', '.locks/x'),
  keyRow('with a "." segment', 'certs/./x'),
  keyRow('with a NUL byte', 'certs/a\0b'),
  keyRow('with backslashes', 'certs\\..\\..\\escape'),
  keyRow('with a 201-character segment', `certs/${label(201)}`),
  keyRow('with non-ASCII letters', 'certs/café'),
  keyRow('with a space', 'certs/a b'),
];

const nameRow = (what: string, input: string): Row => ({
  name: `refuses a certificate name ${what} in live/`,
  surface: 'certificate name',
  input,
  expected: { code: 'CERT_NAME_INVALID', messageIncludes: 'invalid certificate name' },
});
const LIVE_ROWS: Row[] = [
  nameRow('that climbs out with ../', '../escape'),
  nameRow('that is ".."', '..'),
  nameRow('that is "."', '.'),
  nameRow('with a slash', 'a/b'),
  nameRow('that is an absolute path', '/tmp/x'),
  nameRow('that is a dot file', '.hidden'),
  nameRow('in uppercase', 'UPPER.example.com'),
  nameRow('that is empty', ''),
  nameRow('with ".." inside', 'a..b'),
  nameRow('of 201 characters', label(201)),
  nameRow('with a NUL byte', 'a\0b'),
  nameRow('starting with a hyphen', '-lead'),
  nameRow('starting with a hyphen that is no IPv6 address', '--x'),
  nameRow('that is an IPv6 address with its colons', '::1'),
  nameRow('with a space', 'a b'),
  nameRow('with non-ASCII letters', 'café'),
  nameRow('with backslashes', 'a\\..\\b'),
];

// --- platform responses (a local HTTP server standing in for Rancher)

interface ResponseContext {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly url: URL;
  readonly origin: string;
  /** Requests of this row so far, this one included. */
  readonly count: number;
  /** Called when the row is over (stop timers, end streams). */
  onDone(fn: () => void): void;
}

const GOOD_SERVICE = {
  id: '1s900',
  name: 'good',
  state: 'active',
  launchConfig: { labels: { [DENT_LABEL]: 'good-platform.example.com' } },
};
const collection = (data: unknown, next: unknown = null): string =>
  JSON.stringify({ type: 'collection', data, pagination: { next } });
const send =
  (body: string, status = 200): PlatformResponse =>
  ({ res }) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body);
  };
const withGood =
  (...items: unknown[]): PlatformResponse =>
  ({ res }) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(collection([...items, GOOD_SERVICE]));
  };
/** Pages with no items whose `next` never ends (capped so a failing row still finishes). */
const endlessPages =
  (nextOf: (ctx: ResponseContext) => string): PlatformResponse =>
  (ctx) => {
    ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    ctx.res.end(collection([], ctx.count < PAGE_CAP ? nextOf(ctx) : null));
  };
/** The server stops sending endless pages after this many, so a row without a guard fails instead of hanging. */
const PAGE_CAP = 3000;

const platformRow = (
  name: string,
  input: PlatformResponse,
  expected: Expected,
  opts: { ownProcess?: boolean; timeoutMs?: number } = {},
): Row => ({ name, surface: 'platform response', input, expected, ...opts });
const BAD = 'PLATFORM_BAD_RESPONSE';
const IGNORED: Expected = { code: null, accepted: [] };

const PLATFORM_ROWS: Row[] = [
  platformRow(
    'refuses truncated JSON',
    send('{"type":"collection","data":[{"id":"1s1","name":"web"'),
    { code: BAD, messageIncludes: 'not valid JSON' },
  ),
  platformRow('refuses an HTML error page served with status 200', send('<html>502</html>'), {
    code: BAD,
    messageIncludes: 'not valid JSON',
  }),
  platformRow('refuses an empty body', send(''), { code: BAD, messageIncludes: 'not valid JSON' }),
  platformRow('refuses a JSON array where a collection belongs', send('[]'), {
    code: BAD,
    messageIncludes: 'expected a collection',
  }),
  platformRow('refuses a JSON null', send('null'), {
    code: BAD,
    messageIncludes: 'expected a collection, got null',
  }),
  platformRow('refuses a JSON string', send('"services"'), {
    code: BAD,
    messageIncludes: 'expected a collection',
  }),
  platformRow(
    'refuses a collection whose data is an object',
    send('{"type":"collection","data":{"0":{"id":"1s1"}}}'),
    { code: BAD, messageIncludes: 'expected a collection' },
  ),
  platformRow(
    'refuses a collection whose data is a string',
    send('{"type":"collection","data":"1s1"}'),
    { code: BAD, messageIncludes: 'expected a collection' },
  ),
  platformRow(
    'refuses an error object served with status 200',
    send('{"type":"error","status":500,"message":"boom"}'),
    { code: BAD, messageIncludes: 'expected a collection' },
  ),
  platformRow(
    'refuses a JSON value nested 200000 levels deep',
    send('['.repeat(200_000) + ']'.repeat(200_000)),
    { code: BAD, messageIncludes: 'expected a collection' },
  ),
  platformRow(
    'ignores services without an id',
    withGood(
      { name: 'no-id', launchConfig: { labels: { [DENT_LABEL]: 'no-id.example.com' } } },
      { id: 42, name: 'numeric-id', launchConfig: { labels: { [DENT_LABEL]: 'n.example.com' } } },
    ),
    IGNORED,
  ),
  platformRow(
    'ignores items that are null, numbers, strings or arrays',
    withGood(null, 42, 'service', [], true),
    IGNORED,
  ),
  platformRow(
    'ignores label values that are numbers',
    withGood({ id: '1s1', launchConfig: { labels: { [DENT_LABEL]: 5, [DOMAINS_LABEL]: 7 } } }),
    IGNORED,
  ),
  platformRow(
    'ignores label values that are objects, arrays or null',
    withGood(
      { id: '1s1', launchConfig: { labels: { [DENT_LABEL]: { a: 'x.example.com' } } } },
      { id: '1s2', launchConfig: { labels: { [DOMAINS_LABEL]: ['y.example.com'] } } },
      { id: '1s3', launchConfig: { labels: { [DENT_LABEL]: null } } },
    ),
    IGNORED,
  ),
  platformRow(
    'ignores labels that are a string, null, or a launchConfig that is not an object',
    withGood(
      { id: '1s1', launchConfig: { labels: 'io.acme-sidecar.domains=z.example.com' } },
      { id: '1s2', launchConfig: { labels: null } },
      { id: '1s3', launchConfig: 'z.example.com' },
      { id: '1s4', launchConfig: null },
    ),
    IGNORED,
  ),
  platformRow(
    'ignores secondary launch configs that are null or have no labels',
    withGood({ id: '1s1', secondaryLaunchConfigs: [null, { labels: null }, 5] }),
    IGNORED,
  ),
  platformRow(
    'ignores secondary launch configs that are an object instead of a list',
    withGood({ id: '1s1', secondaryLaunchConfigs: { labels: { [DENT_LABEL]: 's.example.com' } } }),
    IGNORED,
  ),
  platformRow(
    'ignores secondary launch configs that are a number',
    withGood({ id: '1s1', secondaryLaunchConfigs: 5 }),
    IGNORED,
  ),
  platformRow(
    'takes a label named __proto__ as data, without touching any prototype',
    ({ res }) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      // Written out by hand: an object literal would set the prototype instead.
      const proto = `{"__proto__":{"${DENT_LABEL}":"polluted.example.com"}}`;
      res.end(
        `{"type":"collection","data":[{"id":"1s1","launchConfig":{"labels":${proto}}},${JSON.stringify(GOOD_SERVICE)}]}`,
      );
    },
    IGNORED,
  ),
  platformRow(
    'refuses a 70 MB response as too large (maxContentLength)',
    ({ res, req }) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"collection","data":[');
      const chunk = Buffer.from('{"id":"x"},'.repeat(95_000)); // ~1 MB
      let sent = 0;
      const pump = (): void => {
        while (sent < 70 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end('{"id":"last"}]}');
      };
      req.socket.once('close', () => (sent = 70));
      pump();
    },
    { code: BAD, messageIncludes: 'too large' },
    { timeoutMs: 30_000 },
  ),
  platformRow(
    'gives up on a response that starts and never ends',
    ({ res }) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"collection","data":[');
    },
    { code: 'PLATFORM_UNAVAILABLE', messageIncludes: 'no answer within' },
  ),
  platformRow('gives up on a server that accepts the request and never answers', () => undefined, {
    code: 'PLATFORM_UNAVAILABLE',
    messageIncludes: 'no answer within',
  }),
  platformRow(
    'gives up on a response that drips one byte every 100 ms forever',
    ({ res, onDone }) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"collection","data":[');
      const t = setInterval(() => res.write(' '), 100);
      onDone(() => clearInterval(t));
    },
    { code: 'PLATFORM_UNAVAILABLE' },
    { ownProcess: true },
  ),
  platformRow(
    'refuses a collection whose next links never end (empty pages)',
    endlessPages((ctx) => `${ctx.origin}${ctx.url.pathname}?limit=1000&marker=m${ctx.count}`),
    { code: BAD },
  ),
  platformRow(
    'refuses a collection whose next link points to the same page',
    endlessPages((ctx) => `${ctx.origin}${ctx.url.pathname}${ctx.url.search}`),
    { code: BAD },
  ),
  platformRow(
    'refuses a next link to another server instead of sending it the credentials',
    send(collection([GOOD_SERVICE], 'http://evil.example.com:8080/v2-beta/services?marker=m1')),
    { code: BAD, messageIncludes: 'another server' },
  ),
  platformRow('refuses a next link that is a number', send(collection([GOOD_SERVICE], 12345)), {
    code: BAD,
  }),
  platformRow(
    'refuses a next link that is an object',
    send(collection([GOOD_SERVICE], { href: '/services?marker=m1' })),
    { code: BAD },
  ),
  platformRow(
    'refuses a collection of more than 100000 items',
    send(collection(Array.from({ length: 100_001 }, (_, i) => ({ id: `1s${i}` })))),
    { code: BAD, messageIncludes: 'more than 100000 items' },
  ),
  platformRow(
    'does not follow a redirect with the credentials',
    ({ res }) => {
      res.writeHead(302, { Location: 'http://evil.example.com/v2-beta/services' });
      res.end();
    },
    { code: 'PLATFORM_REJECTED', messageIncludes: 'HTTP 302' },
  ),
];

const TABLE: readonly Row[] = [
  ...hostnameRows('DOMAINS'),
  ...hostnameRows('Dent label'),
  ...hostnameRows('domains label'),
  ...TOKEN_ROWS,
  ...STORE_ROWS,
  ...LIVE_ROWS,
  ...PLATFORM_ROWS,
];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Every path under `root` (relative, sorted), without following links. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const full = path.join(dir, name);
      out.push(path.relative(root, full));
      if ((await lstat(full)).isDirectory()) await walk(full);
    }
  };
  await walk(root);
  return out.sort();
}

/** Settles `p`, or reports it still pending after `ms` (a hang is a failure, not a test timeout). */
async function within<T>(
  p: Promise<T>,
  ms: number,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown } | { ok: 'pending' }> {
  p.catch(() => undefined); // a late rejection after the deadline is not unhandled
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<{ ok: 'pending' }>((resolve) => {
    timer = setTimeout(() => resolve({ ok: 'pending' }), ms);
  });
  try {
    return await Promise.race([
      p.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function assertError(err: unknown, expected: Expected, what: string): void {
  assert.ok(
    err instanceof SidecarError,
    `${what}: expected a SidecarError ${expected.code ?? ''}, got ${String((err as Error)?.stack ?? err).slice(0, 600)}`,
  );
  assert.equal(err.code, expected.code, `${what}: ${err.message.slice(0, 300)}`);
  assertMessage(err.message, expected);
}

function assertMessage(message: string, expected: Expected): void {
  if (expected.messageIncludes !== undefined) {
    assert.ok(
      message.includes(expected.messageIncludes),
      `message ${JSON.stringify(message.slice(0, 400))} should include ${JSON.stringify(expected.messageIncludes)}`,
    );
  }
  if (expected.maxMessageLength !== undefined) {
    assert.ok(
      message.length <= expected.maxMessageLength,
      `the message is ${message.length} characters long (limit ${expected.maxMessageLength}): ${message.slice(0, 200)}...`,
    );
  }
}

function specNames(d: Discovery): string[] {
  return d.specs.map((s) => s.name);
}

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');
/** The platform-row client, built the same way in a fresh node process. */
const CHILD_SCRIPT = `
const [{ CattleClient }, { RancherPlatform }, { silentLogger }] = await Promise.all(
  ${JSON.stringify(['platform/rancher/cattle-client.ts', 'platform/rancher/rancher-platform.ts', 'util/log.ts'].map((f) => pathToFileURL(path.join(SRC, f)).href))}.map((u) => import(u)),
);
const client = new CattleClient({ ...JSON.parse(process.env.CLIENT_OPTIONS), log: silentLogger });
const platform = new RancherPlatform(client, { domains: async () => '', log: silentLogger });
try {
  const d = await platform.discover();
  console.log(JSON.stringify({ ok: true, specs: d.specs, problems: d.problems }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, code: e.code, message: e.message }));
}
`;

const DUMMY_BUNDLE: CertBundle = { cert: 'c', chain: 'ch', fullchain: 'f', privkey: 'k' };

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe('hostile input: every row gets its own specific error, and nothing else is affected', function () {
  this.timeout(60_000);

  it('has at least 50 rows, over every surface', () => {
    assert.ok(TABLE.length >= 50, `${TABLE.length} rows`);
    const surfaces = new Set(TABLE.map((r) => r.surface));
    assert.equal(surfaces.size, 7, [...surfaces].join(', '));
  });

  // One fake Cattle for every label row: each hostile service has a good
  // service beside it, and its label holds good hostnames around the hostile one.
  let cattle: FakeCattle;
  let labelled: Promise<Discovery> | undefined;
  const labelServices = new Map<Row, { hostile: string; id: string; good: string[] }>();

  // A temp parent holding only WEBROOT (and a canary), one holding only STATE_DIR for each store.
  const temps: string[] = [];
  let tokenParent: string;
  let webroot: string;
  let responder: WebrootResponder;
  let tokenBaseline: string[];
  let storeParent: string;
  let store: FsCertStore;
  let storeBaseline: string[];
  let liveParent: string;
  let live: LiveDir;
  let liveBaseline: string[];

  // The local "Rancher" for platform-response rows: one client for all of
  // them, so a row that wedged it would fail the healthy check after it.
  let server: http.Server;
  let platform: RancherPlatform;
  const sockets = new Set<Socket>();
  let current: PlatformResponse | undefined;
  let requestCount = 0;
  let doneHooks: (() => void)[] = [];
  let clientOptions: Omit<CattleClientOptions, 'log'>;

  /** discover() in a fresh node process (no nock), against the same server. */
  function discoverInChild(): Promise<Discovery> {
    return new Promise((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', CHILD_SCRIPT],
        {
          env: { ...process.env, CLIENT_OPTIONS: JSON.stringify(clientOptions) },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      doneHooks.push(() => child.kill('SIGKILL'));
      child.on('close', () => {
        try {
          const r = JSON.parse(out) as
            | { ok: true; specs: Discovery['specs']; problems: Discovery['problems'] }
            | { ok: false; name: string; code?: ErrorCode; message: string };
          if (r.ok) resolve({ specs: r.specs, problems: r.problems });
          else if (r.code) reject(new SidecarError(r.code, r.message));
          else reject(new Error(`${r.name}: ${r.message}`));
        } catch {
          reject(new Error(`the child process printed ${JSON.stringify(out)}`));
        }
      });
    });
  }

  before(async () => {
    cattle = await startFakeCattle({ pageLimitDefault: 1000 });
    TABLE.forEach((row, i) => {
      if (row.surface !== 'Dent label' && row.surface !== 'domains label') return;
      const key = row.surface === 'Dent label' ? DENT_LABEL : DOMAINS_LABEL;
      const around = [`r${i}-a.example.com`, `r${i}-b.example.com`];
      const value = `${around[0]},${String(row.input)},${around[1]}`;
      const hostile = `hostile-${i}`;
      const svc = cattle.addService({ name: hostile, labels: { [key]: value } });
      const goodHost = `r${i}-good.example.com`;
      cattle.addService({ name: `good-${i}`, labels: { [key]: goodHost } });
      labelServices.set(row, { hostile, id: svc.id, good: [...around, goodHost] });
    });

    const tmp = async (prefix: string) => {
      const d = await mkdtemp(path.join(os.tmpdir(), prefix));
      temps.push(d);
      return d;
    };
    tokenParent = await tmp('hostile-webroot-');
    webroot = path.join(tokenParent, 'webroot');
    await mkdir(webroot);
    await writeFile(path.join(tokenParent, 'canary'), 'outside the webroot');
    responder = new WebrootResponder({ webroot, selfCheck: false, log: silentLogger });
    const goodToken = 'G'.repeat(43);
    await responder.present('good.example.com', goodToken, `${goodToken}.thumbprint`);
    tokenBaseline = await tree(tokenParent);
    assert.deepEqual(tokenBaseline, [
      'canary',
      'webroot',
      'webroot/.well-known',
      'webroot/.well-known/acme-challenge',
      `webroot/.well-known/acme-challenge/${goodToken}`,
    ]);

    storeParent = await tmp('hostile-store-');
    await mkdir(path.join(storeParent, 'state'));
    store = new FsCertStore(path.join(storeParent, 'state'));
    await store.store('certs/good.example.com/production.json', '{}');
    storeBaseline = await tree(storeParent);

    liveParent = await tmp('hostile-live-');
    const stateDir = path.join(liveParent, 'state');
    await mkdir(stateDir);
    // A file beside live/: a remove('../canary') that escaped live/ would delete it.
    await writeFile(path.join(stateDir, 'canary'), 'outside live/');
    live = new LiveDir(stateDir);
    await live.write('good.example.com', DUMMY_BUNDLE);
    liveBaseline = await tree(liveParent);

    server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const healthy = (): void => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(collection(url.pathname.endsWith('/services') ? [GOOD_SERVICE] : []));
      };
      // Only the services collection is hostile; load balancers answer normally.
      if (current === undefined || !url.pathname.endsWith('/services')) return healthy();
      current({
        req,
        res,
        url,
        origin,
        count: ++requestCount,
        onDone: (fn) => doneHooks.push(fn),
      });
    });
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    clientOptions = {
      url: `http://127.0.0.1:${port}/v1`,
      accessKey: 'hostile-access',
      secretKey: 'hostile-secret-key',
      timeoutMs: 300,
      attempts: 2,
      backoffMs: 5,
    };
    const client = new CattleClient({ ...clientOptions, log: silentLogger });
    platform = new RancherPlatform(client, { domains: async () => '', log: silentLogger });
  });

  after(async () => {
    await cattle?.close();
    if (server) {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
    await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
  });

  /** Every label row shares one discovery: all hostile services at once. */
  function discoverLabels(): Promise<Discovery> {
    labelled ??= new RancherPlatform(
      new CattleClient({
        url: cattle.url,
        accessKey: cattle.accessKey,
        secretKey: cattle.secretKey,
        timeoutMs: 5000,
        log: silentLogger,
      }),
      { domains: async () => '', log: silentLogger },
    ).discover();
    return labelled;
  }

  const runners: Record<Surface, (row: Row) => Promise<void>> = {
    async DOMAINS(row) {
      const good = ['good1.example.com', 'good2.example.com'];
      const { specs, problems } = parseDomainList(
        `${good[0]}, ${String(row.input)}, ${good[1]}`,
        'env:DOMAINS',
      );
      assert.deepEqual(
        specs.map((s) => s.name),
        [good[0], ...(row.expected.accepted ?? []), good[1]],
        'the good entries on either side (and only what the input really names) are kept',
      );
      assertProblems(problems, row.expected, 'env:DOMAINS');
    },
    'Dent label': labelRow,
    'domains label': labelRow,

    async 'ACME token'(row) {
      const token = String(row.input);
      for (const [what, call] of [
        ['present', () => responder.present('good.example.com', token, 'key-authorization')],
        ['cleanup', () => responder.cleanup('good.example.com', token)],
      ] as const) {
        const r = await within(call(), 5000);
        assert.equal(r.ok, false, `${what} accepted the token`);
        if (r.ok === false) assertError(r.error, row.expected, what);
      }
      assert.deepEqual(
        await tree(tokenParent),
        tokenBaseline,
        'nothing written, moved or deleted anywhere, in the webroot or outside it',
      );
    },

    async 'store key'(row) {
      const key = String(row.input);
      const calls: [string, () => Promise<unknown>][] = [
        ['store', () => store.store(key, 'hostile', { secret: true })],
        ['load', () => store.load(key)],
        ['exists', () => store.exists(key)],
        ['delete', () => store.delete(key)],
        ['lock', () => store.lock(key, { timeoutMs: 100 })],
      ];
      // list('') is the top level, by contract.
      if (key !== '') calls.push(['list', () => store.list(key)]);
      for (const [what, call] of calls) {
        const r = await within(call(), 5000);
        assert.equal(r.ok, false, `${what} accepted the key`);
        if (r.ok === false) assertError(r.error, row.expected, what);
      }
      assert.deepEqual(await readdir(storeParent), ['state'], 'the parent holds only STATE_DIR');
      assert.deepEqual(await tree(storeParent), storeBaseline, 'nothing written inside it either');
    },

    async 'certificate name'(row) {
      const name = String(row.input);
      const calls: [string, () => Promise<unknown>][] = [
        ['write', () => live.write(name, DUMMY_BUNDLE)],
        ['read', () => live.read(name)],
        ['remove', () => live.remove(name)],
        ['path', async () => live.path(name)],
      ];
      for (const [what, call] of calls) {
        const r = await within(call(), 5000);
        assert.equal(r.ok, false, `${what} accepted the name`);
        if (r.ok === false) assertError(r.error, row.expected, what);
      }
      assert.deepEqual(await readdir(liveParent), ['state'], 'the parent holds only STATE_DIR');
      assert.deepEqual(await tree(liveParent), liveBaseline, 'nothing written inside it either');
    },

    async 'platform response'(row) {
      current = row.input as PlatformResponse;
      requestCount = 0;
      let r: Awaited<ReturnType<typeof within<Discovery>>>;
      try {
        const subject = row.timeoutMs
          ? new RancherPlatform(
              new CattleClient({ ...clientOptions, timeoutMs: row.timeoutMs, log: silentLogger }),
              { domains: async () => '', log: silentLogger },
            )
          : platform;
        r = await within(
          row.ownProcess ? discoverInChild() : subject.discover(),
          // A bound against hanging, not a speed test: the endless-pages rows
          // read 200 pages, which took 30 s for 1000 at load 18.
          Math.max(30000, (row.timeoutMs ?? 0) + 2000),
        );
      } finally {
        current = undefined;
        doneHooks.forEach((fn) => fn());
        doneHooks = [];
      }
      if (r.ok === 'pending') {
        assert.fail(`discover() still running after 30 s (${requestCount} requests so far)`);
      }
      if (row.expected.code === null) {
        assert.ok(r.ok, `discover() failed: ${String((r as { error: unknown }).error)}`);
        assert.deepEqual(specNames(r.value), ['good-platform.example.com']);
        assert.deepEqual(r.value.problems, []);
      } else {
        assert.equal(
          r.ok,
          false,
          `discover() succeeded after ${requestCount} requests: ${JSON.stringify(r.ok && specNames(r.value))}`,
        );
        if (r.ok === false) assertError(r.error, row.expected, 'discover');
      }
      // Nothing else affected: the same client, the same server, a sane answer.
      const after = await within(platform.discover(), 5000);
      assert.ok(after.ok === true, `the next discovery failed: ${JSON.stringify(after)}`);
      assert.deepEqual(specNames(after.value), ['good-platform.example.com']);
      assert.equal(
        ({} as Record<string, unknown>)[DENT_LABEL],
        undefined,
        'Object.prototype untouched',
      );
    },
  };

  async function labelRow(row: Row): Promise<void> {
    const d = await discoverLabels();
    const svc = labelServices.get(row);
    assert.ok(svc);
    const names = specNames(d);
    for (const good of svc.good) assert.ok(names.includes(good), `${good} still discovered`);
    for (const host of row.expected.accepted ?? []) {
      assert.ok(names.includes(host), `${host} discovered`);
    }
    const mine = d.problems.filter((p) => p.source.includes(`(${svc.id})`));
    for (const p of mine) {
      assert.ok(p.source.includes(`service/${svc.hostile}(`), `names the service: ${p.source}`);
    }
    assertProblems(mine, row.expected, svc.hostile);
  }

  function assertProblems(
    problems: readonly { code: string; message: string; source: string }[],
    expected: Expected,
    where: string,
  ): void {
    const shown = JSON.stringify(problems.map((p) => `${p.code}: ${p.message.slice(0, 300)}`));
    if (expected.code === null) {
      assert.deepEqual(problems, [], `no problem expected in ${where}, got ${shown}`);
      return;
    }
    assert.equal(problems.length, 1, `exactly one problem expected in ${where}, got ${shown}`);
    const [p] = problems as [(typeof problems)[number]];
    assert.equal(p.code, expected.code, shown);
    assertMessage(p.message, expected);
  }

  for (const row of TABLE) {
    it(`${row.name} [${row.surface}]`, () => runners[row.surface](row));
  }
});

describe('hostile input: log lines', () => {
  let cattle: FakeCattle;
  before(async () => {
    cattle = await startFakeCattle();
  });
  after(() => cattle?.close());

  it('a line break in a label value or a service name cannot forge a log line (text format)', async () => {
    const forged = '2026-01-01T00:00:00.000Z info certificate issued cert=forged.example.com';
    cattle.addService({
      name: `evil\n${forged}`,
      labels: { [DENT_LABEL]: `ok.example.com,x.example.com\r\n${forged}` },
    });
    let text = '';
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    });
    const log = createLogger({ format: 'text', stream });
    const client = new CattleClient({
      url: cattle.url,
      accessKey: cattle.accessKey,
      secretKey: cattle.secretKey,
      timeoutMs: 5000,
      log,
    });
    const found = await new Discoverer(
      new RancherPlatform(client, { domains: async () => '', log }),
      log,
    ).discover();
    assert.deepEqual(specNames(found), ['ok.example.com']);
    assert.ok(text.includes('hostname skipped'), text);
    const lines = text.split(/\r\n|\r|\n/).filter((l) => l !== '');
    for (const line of lines) {
      assert.ok(
        !line.startsWith(forged.slice(0, 24)) || !line.includes('certificate issued'),
        `a forged log line:\n${text}`,
      );
    }
  });
});
