// The CLUSTER_* settings: what cluster mode needs, what goes together, and
// that no secret (password, encryption key, URL credentials) shows in errors.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/domain/errors.js';
import { isBrokenCircuitError } from 'cockatiel';
import { GRPCUnavailableError } from 'etcd3';
import {
  MEMBER_FAILURES_TO_SKIP,
  RECONNECT_INITIAL_MS,
  RECONNECT_MAX_MS,
} from '../../src/store/etcd-config.js';
import { etcdClientOptions } from '../../src/store/etcd-store.js';

type Env = Record<string, string | undefined>;

const CERT_PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n';

function problems(env: Env): { variable: string; value?: string; expected: string }[] {
  try {
    loadConfig(env, { random: () => 0.5 });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => ({ ...p, value: p.value ?? undefined }));
  }
  assert.fail(`expected ${JSON.stringify(env)} to be refused`);
}

function messageOf(env: Env): string {
  try {
    loadConfig(env, { random: () => 0.5 });
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('expected a ConfigError');
}

describe('cluster settings (CLUSTER_*)', () => {
  let dir: string;
  let keyFile: string;
  let keyB64: string;
  const password = `pw-${randomBytes(6).toString('hex')}`;
  const file = (name: string, content: string): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cluster-config-'));
    keyB64 = randomBytes(32).toString('base64');
    keyFile = file('cluster.key', `${keyB64}\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts endpoints with a key file, and defaults the rest', () => {
    const c = loadConfig({
      CLUSTER_ETCD_ENDPOINTS: 'http://127.0.0.1:2379,http://127.0.0.1:22379',
      CLUSTER_ENCRYPTION_KEY_FILE: keyFile,
    });
    assert.deepEqual(c.clusterEtcdEndpoints, ['http://127.0.0.1:2379', 'http://127.0.0.1:22379']);
    assert.equal(c.clusterName, 'default');
    assert.equal(c.clusterLeaseTtlSeconds, 15);
    assert.equal(c.clusterNodeName, undefined, 'unset: the store uses the hostname');
  });

  it('requires CLUSTER_ENCRYPTION_KEY_FILE with CLUSTER_ETCD_ENDPOINTS', () => {
    const p = problems({ CLUSTER_ETCD_ENDPOINTS: 'http://127.0.0.1:2379' });
    assert.deepEqual(
      p.map((x) => x.variable),
      ['CLUSTER_ENCRYPTION_KEY_FILE'],
    );
    assert.match(p[0]?.expected ?? '', /openssl rand -base64 32/);
  });

  const badEndpoints: [string, string][] = [
    ['a host without a scheme', 'etcd-1:2379'],
    ['a URL without a port', 'https://etcd-1'],
    ['a URL with a path', 'https://etcd-1:2379/v3'],
    ['a gRPC scheme', 'grpc://etcd-1:2379'],
    ['mixed schemes', 'https://etcd-1:2379,http://etcd-2:2379'],
    ['nothing but commas', ' , '],
  ];
  for (const [what, value] of badEndpoints) {
    it(`refuses CLUSTER_ETCD_ENDPOINTS with ${what}, naming the value and what is valid`, () => {
      const p = problems({ CLUSTER_ETCD_ENDPOINTS: value, CLUSTER_ENCRYPTION_KEY_FILE: keyFile });
      const e = p.find((x) => x.variable === 'CLUSTER_ETCD_ENDPOINTS');
      assert.ok(e, JSON.stringify(p));
      assert.match(e.expected, /^expected /);
    });
  }

  it('refuses credentials in an endpoint URL without showing them', () => {
    const msg = messageOf({
      CLUSTER_ETCD_ENDPOINTS: `https://root:${password}@etcd-1:2379`,
      CLUSTER_ENCRYPTION_KEY_FILE: keyFile,
    });
    assert.match(msg, /CLUSTER_ETCD_ENDPOINTS="https:\/\/\*\*\*@etcd-1:2379"/);
    assert.match(msg, /CLUSTER_ETCD_USERNAME/);
    assert.ok(!msg.includes(password), msg);
  });

  it('refuses a key file that is not one base64 32-byte key, without showing it', () => {
    const short = randomBytes(16).toString('base64');
    const cases: [string, RegExp][] = [
      [file('short.key', short), /decodes to 16 bytes, not 32/],
      [file('raw.key', randomBytes(32).toString('latin1')), /not base64|decodes to/],
      [file('empty.key', '\n# nothing\n'), /holds no key/],
      [join(dir, 'missing.key'), /could not read it: ENOENT/],
    ];
    for (const [path, why] of cases) {
      const msg = messageOf({
        CLUSTER_ETCD_ENDPOINTS: 'http://127.0.0.1:2379',
        CLUSTER_ENCRYPTION_KEY_FILE: path,
      });
      assert.match(msg, /CLUSTER_ENCRYPTION_KEY_FILE=.*expected a file holding a base64-encoded/);
      assert.match(msg, why);
      assert.ok(!msg.includes(short), 'key material in the message');
    }
  });

  it('wants the client certificate and its key together, and the user and password file together', () => {
    const cert = file('client.pem', CERT_PEM);
    const pw = file('password', `${password}\n`);
    const base = {
      CLUSTER_ETCD_ENDPOINTS: 'https://etcd-1:2379',
      CLUSTER_ENCRYPTION_KEY_FILE: keyFile,
    };
    assert.deepEqual(
      problems({ ...base, CLUSTER_ETCD_CERT_FILE: cert }).map((x) => x.variable),
      ['CLUSTER_ETCD_KEY_FILE'],
    );
    assert.deepEqual(
      problems({ ...base, CLUSTER_ETCD_PASSWORD_FILE: pw }).map((x) => x.variable),
      ['CLUSTER_ETCD_USERNAME'],
    );
  });

  it('refuses TLS files with http:// endpoints', () => {
    const p = problems({
      CLUSTER_ETCD_ENDPOINTS: 'http://etcd-1:2379',
      CLUSTER_ENCRYPTION_KEY_FILE: keyFile,
      CLUSTER_ETCD_CA_FILE: file('ca.pem', CERT_PEM),
    });
    assert.equal(p[0]?.variable, 'CLUSTER_ETCD_ENDPOINTS');
    assert.match(
      p[0]?.expected ?? '',
      /expected https:\/\/ URLs, since CLUSTER_ETCD_CA_FILE is set/,
    );
  });

  it('refuses a key file for CLUSTER_ETCD_KEY_FILE that holds no private key', () => {
    const p = problems({ CLUSTER_ETCD_KEY_FILE: file('not-a-key.pem', CERT_PEM) });
    assert.ok(p.some((x) => x.variable === 'CLUSTER_ETCD_KEY_FILE'));
  });

  const badNames: [string, string, string][] = [
    ['CLUSTER_NAME', 'a/b', 'a slash'],
    ['CLUSTER_NAME', '..', 'dots only'],
    ['CLUSTER_NAME', 'a..b', 'a double dot'],
    ['CLUSTER_NAME', 'x'.repeat(64), '64 characters'],
    ['CLUSTER_NODE_NAME', 'lb 1', 'a space'],
    ['CLUSTER_LEASE_TTL', '1', 'one second (too short for keep-alives)'],
    ['CLUSTER_LEASE_TTL', '2.5', 'a fraction'],
    ['CLUSTER_LEASE_TTL', '301', 'more than 300'],
  ];
  for (const [variable, value, what] of badNames) {
    it(`refuses ${variable} with ${what}`, () => {
      const p = problems({ [variable]: value });
      assert.deepEqual(
        p.map((x) => [x.variable, x.value]),
        [[variable, value]],
      );
      assert.match(p[0]?.expected ?? '', /^expected /);
    });
  }

  it('never shows the password file content, in errors or in client options', () => {
    const pw = file('pw', `${password}\n`);
    const msg = messageOf({
      CLUSTER_ETCD_ENDPOINTS: 'https://etcd-1:2379',
      CLUSTER_ETCD_USERNAME: 'sidecar',
      CLUSTER_ETCD_PASSWORD_FILE: pw,
      // Missing key file: refused, with the other settings parsed.
    });
    assert.ok(!msg.includes(password));
    assert.ok(!msg.includes(keyB64));
    const opts = etcdClientOptions({
      clusterEtcdEndpoints: ['https://etcd-1:2379'],
      clusterName: 'default',
      clusterLeaseTtlSeconds: 15,
      clusterEtcdUsername: 'sidecar',
      clusterEtcdPasswordFile: pw,
      clusterEtcdCaFile: file('ca2.pem', CERT_PEM),
      clusterEtcdCertFile: file('c2.pem', CERT_PEM),
      clusterEtcdKeyFile: file('k2.pem', KEY_PEM),
    });
    assert.deepEqual(opts.auth && { u: opts.auth.username, p: opts.auth.password }, {
      u: 'sidecar',
      p: password,
    });
    assert.equal(opts.credentials?.rootCertificate.toString(), CERT_PEM);
    assert.equal(opts.credentials?.privateKey?.toString(), KEY_PEM);
    assert.equal(opts.credentials?.certChain?.toString(), CERT_PEM);
  });

  describe('reconnecting after etcd was unreachable (a healed partition)', () => {
    const opts = etcdClientOptions({
      clusterEtcdEndpoints: ['http://etcd-1:2379'],
      clusterName: 'default',
      clusterLeaseTtlSeconds: 15,
    });

    it("bounds gRPC's reconnect backoff (default: up to 120 s)", () => {
      assert.equal(opts.grpcOptions?.['grpc.initial_reconnect_backoff_ms'], RECONNECT_INITIAL_MS);
      assert.equal(opts.grpcOptions?.['grpc.max_reconnect_backoff_ms'], RECONNECT_MAX_MS);
      assert.ok(RECONNECT_MAX_MS <= 3_000 && RECONNECT_INITIAL_MS >= 100);
    });

    it('bounds the watch backoff (default: up to 30 s), and still backs off', () => {
      // etcd3's WatchManager: backoff = initial.next(), then backoff.next() per failed attempt.
      let b = opts.faultHandling?.watchBackoff?.next(undefined);
      const steps: number[] = [];
      for (let i = 0; i < 200 && b; i++, b = b.next(undefined)) steps.push(b.duration);
      assert.equal(steps.length, 200);
      assert.ok(Math.max(...steps) <= RECONNECT_MAX_MS, `max ${Math.max(...steps)} ms`);
      // Not a busy loop: over many failed attempts, waits average well above the first.
      const mean = steps.slice(20).reduce((a, d) => a + d, 0) / (steps.length - 20);
      assert.ok(mean >= RECONNECT_MAX_MS / 4, `mean wait ${mean} ms`);
    });

    it('skips a member after consecutive failures instead of calling it every time', async () => {
      const policy = opts.faultHandling?.host?.('etcd-1:2379');
      assert.ok(policy);
      let calls = 0;
      const fail = () => {
        calls++;
        throw new GRPCUnavailableError('unavailable');
      };
      for (let i = 0; i < MEMBER_FAILURES_TO_SKIP; i++) {
        await assert.rejects(policy.execute(fail), GRPCUnavailableError);
      }
      await assert.rejects(policy.execute(fail), (e: Error) => isBrokenCircuitError(e));
      assert.equal(calls, MEMBER_FAILURES_TO_SKIP);
    });
  });
});
