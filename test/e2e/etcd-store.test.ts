// EtcdCertStore on a real three-member etcd cluster (devenv/etcd.ts): the
// CertStore contract unchanged, what etcd really holds (no private key in the
// clear), wrong keys, a member down, no quorum, and a dead lock holder.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from '../../devenv/etcd.js';
import { errorCode } from '../../src/domain/errors.js';
import { createEtcdStore, EtcdCertStore } from '../../src/store/etcd-store.js';
import { Keyring } from '../../src/store/sealed-value.js';
import { imageNodeArgs } from '../../scripts/image-node-args.js';
import { storeContract } from '../unit/store-contract.js';

const run = promisify(execFile);

let cluster: EtcdCluster;
let client: Etcd3;
const keyB64 = randomBytes(32).toString('base64');
const keyring = Keyring.parse(keyB64);

function clientFor(endpoints: string[]): Etcd3 {
  return new Etcd3({
    hosts: endpoints,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 2000 }),
  });
}

/**
 * test/support/etcd-lock-holder.ts in a process of its own (with `nodeArgs`):
 * it takes lock `certs/a` of cluster `name` with a lease of `ttl` seconds.
 */
function spawnLockHolder(name: string, ttl: number, nodeArgs: readonly string[] = []) {
  return spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', path.resolve('test/support/etcd-lock-holder.ts')],
    {
      env: {
        ...process.env,
        ETCD_ENDPOINTS: cluster.endpoints.join(','),
        CLUSTER: name,
        KEYRING_B64: keyB64,
        LOCK: 'certs/a',
        TTL: String(ttl),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
}

function uniqueCluster(what: string): string {
  return `${what}-${randomBytes(4).toString('hex')}`;
}

function makeStore(
  clusterName: string,
  extra: Partial<ConstructorParameters<typeof EtcdCertStore>[0]> = {},
): EtcdCertStore {
  return new EtcdCertStore({
    client,
    clusterName,
    keyring,
    leaseTtlSeconds: 5,
    lockPollMs: 20,
    operationTimeoutMs: 3000,
    ...extra,
  });
}

/** Every key and raw value etcd holds below `prefix`, as etcdctl prints them. */
async function etcdctlDump(prefix: string): Promise<Buffer> {
  const { stdout } = await run(
    'etcdctl',
    ['--endpoints', cluster.endpoints.join(','), 'get', '--prefix', prefix],
    { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'buffer', maxBuffer: 16 << 20 },
  );
  return stdout;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; ms: number; message: string }> {
  const t0 = Date.now();
  try {
    await p;
  } catch (err) {
    return { code: errorCode(err), ms: Date.now() - t0, message: (err as Error).message };
  }
  return { code: 'none', ms: Date.now() - t0, message: '' };
}

// One cluster for this file only (hooks inside a describe: root hooks would run
// for the whole suite).
describe('etcd store tests on a real 3-member etcd', function () {
  before(async function () {
    this.timeout(60000);
    cluster = await startEtcdCluster({ members: 3 });
    client = clientFor(cluster.endpoints);
  });

  after(async () => {
    client?.close();
    await cluster?.stop();
  });

  storeContract('EtcdCertStore (3-member etcd)', async () => {
    const name = uniqueCluster('contract');
    return {
      store: makeStore(name),
      cleanup: async () => {
        await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
      },
    };
  });

  describe('EtcdCertStore on a real etcd cluster', function () {
    this.timeout(60000);

    it('keeps private keys out of etcd: only sealed bytes reach it', async () => {
      const name = uniqueCluster('secrets');
      const s = makeStore(name);
      const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString();
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
        .privateKey.export({ type: 'pkcs1', format: 'pem' })
        .toString();
      const body = (p: string): string =>
        p
          .split('\n')
          .filter((l) => l && !l.startsWith('-----'))
          .join('');
      // What the sidecar stores: an account key and a certificate record with its key.
      const t0 = process.hrtime.bigint();
      await s.store('acme/ca/account-key.pem', pem, { secret: true });
      const t1 = process.hrtime.bigint();
      await s.store('certs/a/production.json', JSON.stringify({ bundle: { key: rsa } }), {
        secret: true,
      });
      await s.store('certs/a/meta.json', '{"public":"yes"}');
      const t2 = process.hrtime.bigint();
      assert.equal((await s.load('acme/ca/account-key.pem'))?.toString(), pem);
      const t3 = process.hrtime.bigint();
      console.log(
        `      sealed put ${Number(t1 - t0) / 1e6} ms, get+open ${Number(t3 - t2) / 1e6} ms (3-member etcd, loopback)`,
      );

      const raw = await etcdctlDump(`/acme-sidecar/${name}/`);
      const text = raw.toString('latin1');
      assert.match(text, /certs\/a\/production\.json/, 'etcdctl saw the keys');
      assert.ok(!text.includes('PRIVATE KEY'), 'a PEM header reached etcd');
      for (const p of [pem, rsa]) {
        const b = body(p);
        for (let i = 0; i + 40 <= b.length; i += 40) {
          assert.ok(!text.includes(b.slice(i, i + 40)), 'a piece of a key body reached etcd');
        }
        const der = Buffer.from(b, 'base64');
        assert.ok(!raw.includes(der.subarray(der.length - 32)), 'raw key bytes reached etcd');
      }
      // Non-secret values stay readable (authenticated, not encrypted).
      assert.match(text, /\{"public":"yes"\}/);
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('prints operation latencies (figures, not asserted)', async () => {
      const name = uniqueCluster('latency');
      const s = makeStore(name);
      const value = randomBytes(3000).toString('base64'); // about a certificate record
      const times: Record<string, number[]> = { store: [], load: [], 'lock+unlock': [], list: [] };
      const time = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
        const t0 = process.hrtime.bigint();
        await fn();
        times[what]?.push(Number(process.hrtime.bigint() - t0) / 1e6);
      };
      for (let i = 0; i < 100; i++) {
        await time('store', () =>
          s.store(`certs/c${i % 10}/production.json`, value, { secret: true }),
        );
        await time('load', () => s.load(`certs/c${i % 10}/production.json`));
        await time('lock+unlock', async () => {
          await s.lock(`certs/c${i % 10}`, { timeoutMs: 5000 });
          await s.unlock(`certs/c${i % 10}`);
        });
        await time('list', () => s.list('certs'));
      }
      for (const [what, ms] of Object.entries(times)) {
        ms.sort((a, b) => a - b);
        const at = (q: number): string => (ms[Math.floor(q * (ms.length - 1))] ?? NaN).toFixed(1);
        console.log(
          `      ${what}: p50 ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${at(1)} ms (n=${ms.length})`,
        );
      }
      assert.equal((await s.load('certs/c3/production.json'))?.toString(), value);
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('opens watch events of the kv prefix without a second read (openRaw)', async () => {
      const name = uniqueCluster('watch');
      const s = makeStore(name);
      const watcher = await client.watch().prefix(s.layout.kv).create();
      try {
        const got = new Promise<{ key: string; value: string; at: bigint }>((resolve, reject) => {
          watcher.on('put', (kv) => {
            try {
              const { key, value } = s.openRaw(kv.key, kv.value);
              resolve({ key, value: value.toString(), at: process.hrtime.bigint() });
            } catch (err) {
              reject(err as Error);
            }
          });
        });
        const t0 = process.hrtime.bigint();
        await s.store('certs/w/production.json', 'SEALED-SECRET', { secret: true });
        const ev = await got;
        console.log(`      store -> watch event: ${Number(ev.at - t0) / 1e6} ms`);
        assert.deepEqual(
          { key: ev.key, value: ev.value },
          {
            key: 'certs/w/production.json',
            value: 'SEALED-SECRET',
          },
        );
        assert.throws(() => s.openRaw(`/acme-sidecar/${name}/locks/x`, Buffer.alloc(0)), {
          code: 'STORE_KEY_INVALID',
        });
      } finally {
        await watcher.cancel();
      }
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('refuses values sealed with another key, with a clear code and no key material', async () => {
      const name = uniqueCluster('wrongkey');
      const value = `secret-${randomBytes(8).toString('hex')}`;
      await makeStore(name).store('acme/ca/account-key.pem', value, { secret: true });
      const otherB64 = randomBytes(32).toString('base64');
      const other = makeStore(name, { keyring: Keyring.parse(otherB64) });
      const r = await codeOf(other.load('acme/ca/account-key.pem'));
      console.log(`      wrong key: ${r.code}: ${r.message}`);
      assert.equal(r.code, 'STORE_DECRYPT_FAILED');
      assert.match(r.message, /account-key\.pem/);
      assert.match(r.message, /key id [0-9a-f]{16}/);
      for (const secret of [keyB64, otherB64, value]) assert.ok(!r.message.includes(secret));
      // A key ring with the old key second (rotation) still opens it.
      const rotated = makeStore(name, { keyring: Keyring.parse(`${otherB64}\n${keyB64}\n`) });
      assert.equal((await rotated.load('acme/ca/account-key.pem'))?.toString(), value);
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('checks at startup that a replica has the cluster key (checkEncryptionKey)', async () => {
      const name = uniqueCluster('keycheck');
      assert.equal(await makeStore(name).checkEncryptionKey(), 'created');
      assert.equal(await makeStore(name).checkEncryptionKey(), 'matched');
      const otherB64 = randomBytes(32).toString('base64');
      const wrong = await codeOf(
        makeStore(name, { keyring: Keyring.parse(otherB64) }).checkEncryptionKey(),
      );
      console.log(`      replica with another key at startup: ${wrong.code}: ${wrong.message}`);
      assert.equal(wrong.code, 'STORE_DECRYPT_FAILED');
      assert.match(wrong.message, /every replica needs the same key file/);
      const rotated = makeStore(name, { keyring: Keyring.parse(`${otherB64}\n${keyB64}`) });
      assert.equal(await rotated.checkEncryptionKey(), 'matched');
      // Kept outside kv/: not a store key.
      assert.deepEqual(await rotated.list(''), []);
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('refuses a plaintext value written into etcd by hand, and a sealed value moved to another key', async () => {
      const name = uniqueCluster('tamper');
      const s = makeStore(name);
      const kv = (k: string): string => `/acme-sidecar/${name}/kv/${k}`;
      await client.put(kv('acme/ca/account-key.pem')).value('-----BEGIN PRIVATE KEY-----attacker');
      assert.equal(
        (await codeOf(s.load('acme/ca/account-key.pem'))).code,
        'STORE_DECRYPT_FAILED',
        'a planted plaintext key was accepted',
      );
      await s.store('certs/victim/production.json', 'SECRET', { secret: true });
      const sealed = await client.get(kv('certs/victim/production.json')).buffer();
      assert.ok(sealed);
      await client.put(kv('certs/attacker/production.json')).value(sealed);
      assert.equal(
        (await codeOf(s.load('certs/attacker/production.json'))).code,
        'STORE_DECRYPT_FAILED',
        'a sealed value moved to another key was accepted',
      );
      // Same key, another cluster prefix.
      const elsewhere = uniqueCluster('tamper');
      await client.put(`/acme-sidecar/${elsewhere}/kv/certs/victim/production.json`).value(sealed);
      assert.equal(
        (await codeOf(makeStore(elsewhere).load('certs/victim/production.json'))).code,
        'STORE_DECRYPT_FAILED',
      );
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
      await client.delete().prefix(`/acme-sidecar/${elsewhere}/`).exec();
    });

    it('keeps reading, writing and locking with one member stopped', async () => {
      const name = uniqueCluster('onedown');
      const s = makeStore(name);
      await s.store('certs/a/meta.json', 'before');
      const leader = await cluster.leaderName();
      const victim = cluster.members.find((m) => m.name === leader) ?? cluster.members[0];
      assert.ok(victim);
      await victim.stop();
      try {
        const t0 = Date.now();
        // Within the store's own bounds: retries on other members, no caller loop.
        await s.store('certs/a/meta.json', 'during');
        assert.equal((await s.load('certs/a/meta.json'))?.toString(), 'during');
        await s.lock('certs/a', { timeoutMs: 5000 });
        await s.unlock('certs/a');
        assert.deepEqual(await s.list('certs'), ['a']);
        console.log(
          `      leader ${victim.name} stopped: store+load+lock+unlock+list in ${Date.now() - t0} ms`,
        );
      } finally {
        await victim.start();
        await cluster.waitHealthy();
      }
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('fails fast with STORE_UNAVAILABLE without quorum, and recovers when members return', async () => {
      const name = uniqueCluster('noquorum');
      const s = makeStore(name, { operationTimeoutMs: 3000 });
      await s.store('certs/a/meta.json', 'kept');
      const [a, b] = cluster.members;
      assert.ok(a && b);
      await a.stop();
      await b.kill();
      let recovered = false;
      try {
        const results = {
          store: await codeOf(s.store('certs/a/meta.json', 'lost')),
          load: await codeOf(s.load('certs/a/meta.json')),
          list: await codeOf(s.list('certs')),
          lock: await codeOf(s.lock('certs/a', { timeoutMs: 60_000 })),
        };
        for (const [op, r] of Object.entries(results)) {
          console.log(`      no quorum: ${op} failed with ${r.code} after ${r.ms} ms`);
          assert.equal(r.code, 'STORE_UNAVAILABLE', `${op}: ${r.message}`);
          // operationTimeoutMs plus scheduling slack: never a hang.
          assert.ok(r.ms < 4000, `${op} took ${r.ms} ms`);
        }
        await a.start();
        await b.start();
        const t0 = Date.now();
        for (;;) {
          try {
            // The write that timed out has an unknown outcome, as with any
            // etcd client: its proposal may sit in the surviving member's raft
            // log and commit once the majority is back. Either value is
            // whole; anything else (or an error) is not a recovery.
            const value = (await s.load('certs/a/meta.json'))?.toString();
            assert.ok(value === 'kept' || value === 'lost', `after recovery: ${value}`);
            console.log(`      the timed-out write ${value === 'lost' ? 'did' : 'did not'} commit`);
            break;
          } catch (err) {
            if (Date.now() - t0 > 30_000) throw err;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        recovered = true;
        console.log(`      majority back: store answers again after ${Date.now() - t0} ms`);
        await s.lock('certs/a', { timeoutMs: 5000 });
        await s.unlock('certs/a');
      } finally {
        if (!recovered) {
          if (!a.isRunning()) await a.start();
          if (!b.isRunning()) await b.start();
        }
        await cluster.waitHealthy();
      }
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('keeps a held lock through a quorum loss shorter than the lease TTL', async () => {
      const name = uniqueCluster('heldthrough');
      const holder = makeStore(name, { leaseTtlSeconds: 3 });
      const other = makeStore(name);
      await holder.lock('certs/a', { timeoutMs: 2000 });
      const [a, b] = cluster.members;
      assert.ok(a && b);
      await a.stop();
      await b.stop();
      // Deliberate: the outage lasts 2 s, shorter than the 3 s lease TTL.
      await new Promise((r) => setTimeout(r, 2000));
      await a.start();
      await b.start();
      await cluster.waitHealthy();
      // etcd extends leases when a new leader takes over and our keep-alive
      // resumes; waiting longer than the TTL shows the lease is really renewed.
      const t0 = Date.now();
      let r = await codeOf(other.lock('certs/a', { timeoutMs: 4000 }));
      while (r.code === 'STORE_UNAVAILABLE' && Date.now() - t0 < 15_000) {
        await new Promise((res) => setTimeout(res, 200)); // circuit breakers half-open after 5 s
        r = await codeOf(other.lock('certs/a', { timeoutMs: 4000 }));
      }
      assert.equal(r.code, 'LOCK_TIMEOUT', `the lock was lost or stolen: ${r.code} ${r.message}`);
      await holder.unlock('certs/a');
      await other.lock('certs/a', { timeoutMs: 2000 });
      await other.unlock('certs/a');
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('logs in with CLUSTER_ETCD_USERNAME and _PASSWORD_FILE; a wrong password is STORE_UNAUTHORIZED and never shown', async () => {
      // Its own one-member etcd: auth applies to a whole cluster.
      const single = await startEtcdCluster({ members: 1 });
      const dir = await mkdtemp(path.join(os.tmpdir(), 'etcd-auth-'));
      const password = `pw-${randomBytes(8).toString('hex')}`;
      const handles: { close(): void }[] = [];
      try {
        const ctl = (...args: string[]) =>
          run('etcdctl', ['--endpoints', single.endpoints.join(','), ...args], {
            env: { ...process.env, ETCDCTL_API: '3' },
          });
        await ctl('user', 'add', `root:${password}`);
        await ctl('auth', 'enable');
        const keyFile = path.join(dir, 'cluster.key');
        await writeFile(keyFile, `${keyB64}\n`);
        const config = (pw: string) => ({
          clusterEtcdEndpoints: single.endpoints,
          clusterName: 'auth',
          clusterLeaseTtlSeconds: 5,
          clusterEncryptionKeyFile: keyFile,
          clusterEtcdUsername: 'root',
          clusterEtcdPasswordFile: pw,
        });
        const good = path.join(dir, 'good.pw');
        await writeFile(good, `${password}\n`);
        const ok = createEtcdStore(config(good), { operationTimeoutMs: 3000 });
        handles.push(ok);
        await ok.store.store('acme/ca/account-key.pem', 'K', { secret: true });
        assert.equal((await ok.store.load('acme/ca/account-key.pem'))?.toString(), 'K');
        await ok.store.lock('certs/a', { timeoutMs: 1000 });
        await ok.store.unlock('certs/a');

        const bad = path.join(dir, 'bad.pw');
        const wrong = `wrong-${randomBytes(8).toString('hex')}`;
        await writeFile(bad, wrong);
        const no = createEtcdStore(config(bad), { operationTimeoutMs: 3000 });
        handles.push(no);
        const r = await codeOf(no.store.load('acme/ca/account-key.pem'));
        console.log(`      wrong etcd password: ${r.code} after ${r.ms} ms: ${r.message}`);
        assert.equal(r.code, 'STORE_UNAUTHORIZED');
        assert.ok(!r.message.includes(wrong) && !r.message.includes(password));
      } finally {
        for (const h of handles) h.close();
        await single.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('talks TLS with CLUSTER_ETCD_CA_FILE, _CERT_FILE and _KEY_FILE; without them, fails with a code', async () => {
      const secure = await startEtcdCluster({ members: 1, tls: true });
      const dir = await mkdtemp(path.join(os.tmpdir(), 'etcd-tls-'));
      const handles: { close(): void }[] = [];
      try {
        assert.ok(secure.tls);
        assert.match(secure.endpoints[0] ?? '', /^https:\/\/127\.0\.0\.1:\d+$/);
        const keyFile = path.join(dir, 'cluster.key');
        await writeFile(keyFile, `${keyB64}\n`);
        const base = {
          clusterEtcdEndpoints: secure.endpoints,
          clusterName: 'tls',
          clusterLeaseTtlSeconds: 5,
          clusterEncryptionKeyFile: keyFile,
        };
        const ok = createEtcdStore(
          {
            ...base,
            clusterEtcdCaFile: secure.tls.caFile,
            clusterEtcdCertFile: secure.tls.certFile,
            clusterEtcdKeyFile: secure.tls.keyFile,
          },
          { operationTimeoutMs: 3000 },
        );
        handles.push(ok);
        await ok.store.store('certs/a/meta.json', 'over TLS');
        assert.equal((await ok.store.load('certs/a/meta.json'))?.toString(), 'over TLS');

        const attempts = {
          'no client certificate': { ...base, clusterEtcdCaFile: secure.tls.caFile },
          'system roots only': {
            ...base,
            clusterEtcdCertFile: secure.tls.certFile,
            clusterEtcdKeyFile: secure.tls.keyFile,
          },
        };
        for (const [what, config] of Object.entries(attempts)) {
          const h = createEtcdStore(config, { operationTimeoutMs: 3000 });
          handles.push(h);
          const r = await codeOf(h.store.load('certs/a/meta.json'));
          console.log(`      TLS, ${what}: ${r.code} after ${r.ms} ms: ${r.message.slice(0, 160)}`);
          assert.equal(r.code, 'STORE_TLS', `${what}: ${r.message}`);
          assert.ok(r.ms < 4000, `${what} took ${r.ms} ms`);
        }
      } finally {
        for (const h of handles) h.close();
        await secure.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });

    // The image starts Node with --jitless (Dockerfile ENTRYPOINT): no
    // WebAssembly, so protobufjs' int64 helper (long) takes its JavaScript
    // path. A lock is a lease (an int64 ID), a transaction and keep-alives.
    it("takes and holds a lock in a process with the image's Node flags (--jitless)", async function () {
      this.timeout(30_000);
      const name = uniqueCluster('jitless');
      const child = spawnLockHolder(name, 5, imageNodeArgs());
      try {
        const [line] = (await once(child.stdout, 'data')) as [Buffer];
        assert.equal(line.toString().trim(), 'locked');
        // Held, and its lease kept alive past a keep-alive period.
        await new Promise((r) => setTimeout(r, 3000));
        const s = makeStore(name);
        assert.equal((await codeOf(s.lock('certs/a', { timeoutMs: 300 }))).code, 'LOCK_TIMEOUT');
        assert.equal(child.exitCode, null);
      } finally {
        child.kill('SIGKILL');
      }
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });

    it('releases a lock whose holder was killed once its lease TTL runs out', async () => {
      const name = uniqueCluster('deadholder');
      const ttl = 2;
      const child = spawnLockHolder(name, ttl);
      try {
        const [line] = (await once(child.stdout, 'data')) as [Buffer];
        assert.equal(line.toString().trim(), 'locked');
        const s = makeStore(name);
        // Held by a live process: not ours to take.
        assert.equal((await codeOf(s.lock('certs/a', { timeoutMs: 300 }))).code, 'LOCK_TIMEOUT');
        child.kill('SIGKILL');
        await once(child, 'exit');
        const t0 = Date.now();
        await s.lock('certs/a', { timeoutMs: 15_000 });
        const waited = Date.now() - t0;
        console.log(`      holder killed: lock free after ${waited} ms (lease TTL ${ttl} s)`);
        // etcd expires a lease no sooner than its TTL, plus one election
        // timeout of slack on the leader's side.
        assert.ok(waited >= ttl * 1000 - 1000, `released after ${waited} ms, before the TTL`);
        assert.ok(waited <= ttl * 1000 + 3000, `released after ${waited} ms`);
        await s.unlock('certs/a');
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      await client.delete().prefix(`/acme-sidecar/${name}/`).exec();
    });
  });
});
