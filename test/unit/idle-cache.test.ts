import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs, watch as watchFs, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { watchLive, type LiveWatch } from '../../src/deploy/live-watch.js';
import type { CertBundle } from '../../src/domain/types.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import {
  KEPT_MAX_AGE_MS,
  isLocalFilesystem,
  watchStore,
  type ChangeFeed,
} from '../../src/store/fs-watch.js';
import { PassReadCache } from '../../src/store/pass-cache.js';
import type { CertStore } from '../../src/store/store.js';
import { ariKind, backoffKind } from '../../src/store/record-kinds.js';
import { RecordReader } from '../../src/store/records.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { CountingStore } from '../support/counting-store.js';
import { retainedBy } from '../support/retained.js';

const sh = (script: string) => promisify(execFile)('sh', ['-c', script]);

const NAMES = ['a', 'b', 'c'];
const KINDS = ['self-signed.json', 'staging.json', 'production.json', 'staging.ari.json'];
const KEYS = [...NAMES.flatMap((n) => KINDS.map((k) => `certs/${n}/${k}`)), 'claims.json'];

describe('PassReadCache with a watch on the state directory: records kept across passes', () => {
  let root: string;
  let counting: CountingStore;
  let cache: PassReadCache;
  let feed: ChangeFeed | undefined;

  /** One pass reading every key; what it got, by key. */
  const pass = async (): Promise<Map<string, Buffer | undefined>> => {
    await cache.begin();
    try {
      const got = new Map<string, Buffer | undefined>();
      for (const key of KEYS) got.set(key, await cache.load(key));
      return got;
    } finally {
      cache.end();
    }
  };
  const text = (got: Map<string, Buffer | undefined>, key: string) => got.get(key)?.toString();

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'idle-cache-'));
    counting = new CountingStore(new FsCertStore(root));
    cache = new PassReadCache(counting);
    // production.json stays missing: a missing record is kept too.
    for (const n of NAMES) {
      for (const k of ['self-signed.json', 'staging.json', 'staging.ari.json']) {
        await counting.store(`certs/${n}/${k}`, `${n}/${k} v1`);
      }
    }
    await counting.store('claims.json', '{}');
    feed = watchStore(root);
    assert.ok(feed, `${root} is on a local filesystem`);
    cache.follow(feed);
  });
  afterEach(async () => {
    cache.unfollow();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('an idle pass with the cache warm reads nothing from the store, and hands out the same bytes', async () => {
    const first = await pass();
    assert.equal(counting.total(), KEYS.length);
    assert.equal(feed?.watchCount(), 1 + 1 + NAMES.length, 'root, certs/ and one per certificate');
    for (let p = 2; p <= 4; p++) {
      const readsBefore = cache.reads;
      const again = await pass();
      assert.equal(counting.total(), KEYS.length, `pass ${p}: no load reached the store`);
      assert.equal(cache.reads, readsBefore);
      for (const key of KEYS) assert.equal(again.get(key), first.get(key), key);
    }
  });

  it('a record rewritten in place by another process between passes is read again by the next pass, and only it', async () => {
    await pass();
    await sh(`printf 'garbage' > '${join(root, 'certs', 'b', 'staging.json')}'`);
    const got = await pass();
    assert.equal(text(got, 'certs/b/staging.json'), 'garbage');
    // The directory of the change is read again; the others are not.
    for (const key of KEYS) {
      const expected = key.startsWith('certs/b/') ? 2 : 1;
      assert.equal(counting.loads.get(key), expected, key);
    }
  });

  it('a record written in place by this process behind the cache (the self-heal tests) is seen by the next pass', async () => {
    await pass();
    await fs.writeFile(join(root, 'certs', 'a', 'self-signed.json'), 'corrupt');
    assert.equal(text(await pass(), 'certs/a/self-signed.json'), 'corrupt');
  });

  it('a change made just before the pass starts, with no turn of the event loop between, is seen by it', async () => {
    await pass();
    // The kernel has queued the event; nothing has read it yet.
    writeFileSync(join(root, 'certs', 'c', 'staging.json'), 'just now');
    assert.equal(text(await pass(), 'certs/c/staging.json'), 'just now');
  });

  it('a record replaced by another writer (an atomic rename) or deleted is seen by the next pass', async () => {
    await pass();
    const other = new FsCertStore(root);
    await other.store('certs/c/staging.ari.json', 'theirs');
    await other.delete('certs/a/staging.json');
    await other.store('claims.json', '{"x":1}');
    const got = await pass();
    assert.equal(text(got, 'certs/c/staging.ari.json'), 'theirs');
    assert.equal(got.get('certs/a/staging.json'), undefined);
    assert.equal(text(got, 'claims.json'), '{"x":1}');
  });

  it('a missing record created later, in a directory created later, is seen', async () => {
    cache.end();
    await cache.begin();
    assert.equal(await cache.load('certs/new/staging.json'), undefined);
    cache.end();
    await sh(
      `mkdir -p '${join(root, 'certs', 'new')}' && printf 'fresh' > '${join(root, 'certs', 'new', 'staging.json')}'`,
    );
    await cache.begin();
    assert.equal((await cache.load('certs/new/staging.json'))?.toString(), 'fresh');
    cache.end();
  });

  it('a certificate directory removed and made again with same-sized files is seen', async () => {
    await pass();
    const dir = join(root, 'certs', 'a');
    await sh(
      `rm -rf '${dir}' && mkdir '${dir}' && printf 'a/staging.json v2' > '${dir}/staging.json'`,
    );
    const got = await pass();
    assert.equal(text(got, 'certs/a/staging.json'), 'a/staging.json v2');
    assert.equal(got.get('certs/a/self-signed.json'), undefined);
    // Watched again: the pass after it reads nothing.
    const loads = counting.total();
    await pass();
    assert.equal(counting.total(), loads);
    // ... and a change in the new directory is seen.
    await sh(`printf 'a/staging.json v3' > '${dir}/staging.json'`);
    assert.equal(text(await pass(), 'certs/a/staging.json'), 'a/staging.json v3');
  });

  it('our own write is read back by the next load, and once more by the next pass at most', async () => {
    await pass();
    await cache.begin();
    await cache.store('certs/b/staging.json', 'ours');
    assert.equal((await cache.load('certs/b/staging.json'))?.toString(), 'ours');
    cache.end();
    assert.equal(text(await pass(), 'certs/b/staging.json'), 'ours');
  });

  it('a change while a key is being read leaves nothing kept: its token is spent', async () => {
    const token = feed?.track('certs/a/staging.json');
    assert.equal(token?.valid(), true);
    await fs.writeFile(join(root, 'certs', 'a', 'staging.json'), 'during');
    await feed?.settle();
    assert.equal(token?.valid(), false);
  });

  it('without a feed (etcd, a shared filesystem) every pass reads the store again', async () => {
    cache.unfollow();
    await pass();
    await pass();
    assert.equal(counting.total(), 2 * KEYS.length);
  });

  it('a store on a filesystem other hosts may write (here /proc, not a local disk type) is not watched', () => {
    assert.equal(isLocalFilesystem('/proc'), false);
    assert.equal(watchStore('/proc'), undefined);
    assert.equal(isLocalFilesystem(root), true);
  });
});

describe('PassReadCache keeps a parsed record across passes, not its bytes too (issue 15 goal 3)', () => {
  const ARI = 'certs/a/staging.ari.json';
  const BACKOFF = 'certs/a/backoff.json';
  const ari = (serial: string) =>
    JSON.stringify({
      serial,
      directoryUrl: 'https://ca.test/dir',
      checkedAt: '2026-01-01T00:00:00.000Z',
      nextCheck: '2026-01-01T06:00:00.000Z',
    });
  let root: string;
  let counting: CountingStore;
  let cache: PassReadCache;
  let reader: RecordReader;

  /** One pass running `fn`. */
  const inPass = async <T>(fn: () => Promise<T>): Promise<T> => {
    await cache.begin();
    try {
      return await fn();
    } finally {
      cache.end();
    }
  };

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'idle-parsed-'));
    counting = new CountingStore(new FsCertStore(root));
    cache = new PassReadCache(counting);
    reader = new RecordReader(
      cache,
      new FixedClock(new Date('2026-01-01T00:00:00Z')),
      silentLogger,
    );
    await counting.store(ARI, ari('01'));
    await counting.store(BACKOFF, JSON.stringify({ attempts: 1 }));
    const feed = watchStore(root);
    assert.ok(feed, `${root} is on a local filesystem`);
    cache.follow(feed);
  });
  afterEach(async () => {
    cache.unfollow();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('a parsed record is served as the same value for the rest of the pass and the next ones, without a read', async () => {
    const first = await inPass(async () => {
      const v = await reader.read(ARI, ariKind);
      assert.equal(await reader.read(ARI, ariKind), v);
      return v;
    });
    assert.equal(first?.serial, '01');
    const identity = cache.kept(ARI);
    assert.ok(identity, 'vouched for by the watch');
    for (let p = 2; p <= 3; p++) {
      await inPass(async () => {
        assert.equal(await reader.read(ARI, ariKind), first, `pass ${p}: the very same value`);
      });
      assert.equal(cache.kept(ARI), identity, `pass ${p}: the same identity for the idle shortcut`);
    }
    assert.equal(counting.loads.get(ARI), 1);
  });

  it('once parsed, a watched key keeps no bytes: a plain load reads the store again (a new identity), once', async () => {
    let identity: object | undefined;
    await inPass(async () => {
      await reader.read(ARI, ariKind);
      identity = cache.kept(ARI);
    });
    await inPass(async () => {
      assert.equal((await reader.read(ARI, ariKind))?.serial, '01');
      assert.equal(counting.loads.get(ARI), 1, 'the parsed value is served');
      assert.equal(cache.kept(ARI), identity);
      assert.equal((await cache.load(ARI))?.toString(), ari('01'));
      assert.equal((await cache.load(ARI))?.toString(), ari('01'));
      assert.equal(counting.loads.get(ARI), 2);
      assert.notEqual(cache.kept(ARI), identity, 'a new read, a new identity');
    });
    await inPass(async () => {
      assert.equal((await cache.load(ARI))?.toString(), ari('01'));
    });
    assert.equal(counting.loads.get(ARI), 2, 'bytes no reader parsed are kept as before');
  });

  it('within a pass a plain load after a parsed read sees the same version, even if the store changed (no watch: etcd)', async () => {
    const versions = new Map<string, Buffer>([[ARI, Buffer.from(ari('01'))]]);
    const store: CertStore = {
      load: (k) => Promise.resolve(versions.get(k)),
      store: (k, v) => {
        versions.set(k, Buffer.from(v));
        return Promise.resolve();
      },
      delete: () => Promise.resolve(),
      quarantine: () => Promise.resolve(undefined),
      exists: (k) => Promise.resolve(versions.has(k)),
      list: () => Promise.resolve([]),
      lock: () => Promise.resolve(),
      unlock: () => Promise.resolve(),
    };
    const plain = new PassReadCache(store);
    const r = new RecordReader(
      plain,
      new FixedClock(new Date('2026-01-01T00:00:00Z')),
      silentLogger,
    );
    await plain.begin();
    try {
      assert.equal((await r.read(ARI, ariKind))?.serial, '01');
      // Another process writes behind our back.
      versions.set(ARI, Buffer.from(ari('02')));
      assert.equal((await plain.load(ARI))?.toString(), ari('01'));
    } finally {
      plain.end();
    }
  });

  it('a record no reader parsed as a shared kind keeps its bytes (a plain reader, a backoff record)', async () => {
    await inPass(async () => {
      await cache.load('certs/a/self-signed.json');
      await reader.read(BACKOFF, backoffKind);
    });
    await inPass(async () => {
      await reader.read(BACKOFF, backoffKind);
      await cache.load(BACKOFF);
    });
    assert.equal(counting.loads.get(BACKOFF), 1);
  });

  it('a parsed record changed on disk between passes is read and parsed again', async () => {
    const first = await inPass(() => reader.read(ARI, ariKind));
    await sh(`printf '%s' '${ari('02')}' > '${join(root, 'certs', 'a', 'staging.ari.json')}'`);
    const second = await inPass(() => reader.read(ARI, ariKind));
    assert.equal(first?.serial, '01');
    assert.equal(second?.serial, '02');
    assert.equal(counting.loads.get(ARI), 2);
  });

  it('our own write of a parsed record is read back at once', async () => {
    await inPass(() => reader.read(ARI, ariKind));
    await inPass(async () => {
      await cache.store(ARI, ari('03'));
      assert.equal((await reader.read(ARI, ariKind))?.serial, '03');
    });
  });

  it('outside a pass, or without a watch after the pass, the parsed value is not served', async () => {
    await inPass(() => reader.read(ARI, ariKind));
    assert.equal((await reader.read(ARI, ariKind))?.serial, '01');
    assert.equal(counting.loads.get(ARI), 2, 'outside a pass: read');
    cache.unfollow();
    await inPass(() => reader.read(ARI, ariKind));
    await inPass(() => reader.read(ARI, ariKind));
    assert.equal(counting.loads.get(ARI), 4, 'no watch: once per pass');
  });
});

describe('LiveDir with the watch on live/: bundles kept across passes', () => {
  let dir: string;
  let live: LiveDir;
  let watch: LiveWatch | undefined;
  const bundle = (tag: string): CertBundle => ({
    cert: `${tag}-c`,
    chain: `${tag}-ch`,
    fullchain: `${tag}-fc`,
    privkey: `${tag}-k`,
  });
  /** What a pass does first (app/pass.ts): lets queued events arrive. */
  const settle = () => new Promise<void>((r) => setImmediate(r));

  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'idle-live-'));
    live = new LiveDir(dir);
    await fs.mkdir(join(dir, 'live'));
    await live.write('a.test', bundle('a1'));
    await live.write('b.test', bundle('b1'));
    watch = await watchLive(
      dir,
      () => undefined,
      (err) => assert.fail(String(err)),
    );
    live.follow(watch);
  });
  afterEach(async () => {
    live.follow(undefined);
    watch?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a kept read is served without touching the disk until something changes; a plain read always reads', async () => {
    const first = await live.read('a.test', { kept: true });
    await settle();
    // The same object: not read again (a read from disk makes a new one).
    assert.equal(await live.read('a.test', { kept: true }), first);
    assert.notEqual(await live.read('a.test'), first);
    assert.deepEqual(await live.read('a.test'), first);
  });

  it('a file edited in place through the link, by another process, is read again', async () => {
    const first = await live.read('a.test', { kept: true });
    const b = await live.read('b.test', { kept: true });
    await sh(`printf 'edited' > '${join(dir, 'live', 'a.test', 'cert.pem')}'`);
    await settle();
    assert.equal((await live.read('a.test', { kept: true }))?.cert, 'edited');
    assert.notEqual(await live.read('a.test', { kept: true }), first);
    assert.equal(await live.read('b.test', { kept: true }), b, 'b did not change');
  });

  it('a new version published by another writer (the link swapped), or the entry removed by hand, is seen', async () => {
    await live.read('a.test', { kept: true });
    await live.read('b.test', { kept: true });
    await new LiveDir(dir).write('a.test', bundle('a2'));
    await sh(`rm -rf '${join(dir, 'live', 'b.test')}'`);
    await settle();
    assert.equal((await live.read('a.test', { kept: true }))?.cert, 'a2-c');
    assert.equal(await live.read('b.test', { kept: true }), undefined);
    // The new version is watched in turn: an edit there is seen too.
    await watch?.settled();
    await sh(`printf 'edited' > '${join(dir, 'live', 'a.test', 'privkey.pem')}'`);
    await settle();
    assert.equal((await live.read('a.test', { kept: true }))?.privkey, 'edited');
  });

  it('our own write is read back at once', async () => {
    await live.read('a.test', { kept: true });
    await live.write('a.test', bundle('a3'));
    assert.equal((await live.read('a.test', { kept: true }))?.cert, 'a3-c');
  });

  it('live/ itself moved away and made again: nothing kept is served any more', async () => {
    const first = await live.read('a.test', { kept: true });
    await fs.rename(join(dir, 'live'), join(dir, 'live.old'));
    await fs.mkdir(join(dir, 'live'));
    await new LiveDir(dir).write('a.test', bundle('a9'));
    await settle();
    await settle();
    const now = await live.read('a.test', { kept: true });
    assert.equal(now?.cert, 'a9-c');
    assert.notEqual(await live.read('a.test', { kept: true }), now, 'read from disk each time');
    assert.notEqual(now, first);
  });

  it('without the watch (once, or after shutdown) every read goes to the disk', async () => {
    live.follow(undefined);
    const first = await live.read('a.test', { kept: true });
    assert.notEqual(await live.read('a.test', { kept: true }), first);
  });
});

describe('watchStore: what a token may not vouch for', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'fs-watch-'));
    await fs.mkdir(join(root, 'certs', 'foo'), { recursive: true });
    await fs.writeFile(join(root, 'certs', 'foo', 'production.json'), '{}');
    await fs.writeFile(join(root, 'claims.json'), '{}');
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('a directory whose watch cannot be set (the inotify limit) is not vouched for by its parent', async () => {
    const errors: unknown[] = [];
    const feed = watchStore(root, {
      assumeLocal: true,
      onError: (e) => errors.push(e),
      watch: (path, o) => {
        if (path.endsWith(join('certs', 'foo'))) {
          throw Object.assign(
            new Error('ENOSPC: System limit for number of file watchers reached'),
            {
              code: 'ENOSPC',
            },
          );
        }
        return watchFs(path, o);
      },
    });
    assert.ok(feed);
    try {
      assert.equal(feed.track('certs/foo/production.json'), undefined);
      assert.equal(errors.length, 1);
      // A directory that does not exist yet is still vouched for by its parent.
      assert.ok(feed.track('certs/bar/production.json'));
    } finally {
      feed.close();
    }
  });

  it('a token is a small object: the daemon keeps five per certificate', () => {
    const feed = watchStore(root, { assumeLocal: true });
    assert.ok(feed);
    try {
      // valid() is shared (on the prototype), not a closure made per token.
      const [t1, t2] = [feed.track('certs/a/x.json'), feed.track('certs/a/y.json')];
      assert.ok(t1 && t2);
      assert.equal(t1.valid, t2.valid);
      const n = 2000;
      const bytes = retainedBy(() => Array.from({ length: n }, () => feed.track('certs/a/x.json')));
      // About 80 bytes alone, up to about 150 in the whole suite on Node 24
      // (V8's field representations and slack depend on what ran before); a
      // closure over its context was 425 (Node 20; 160 on Node 24).
      assert.ok(bytes / n < 200, `${bytes / n} bytes per token`);
    } finally {
      feed.close();
    }
  });

  it('no token outlives KEPT_MAX_AGE_MS, whatever the watches say (a dropped event)', () => {
    let t = 0;
    const feed = watchStore(root, { assumeLocal: true, now: () => t });
    assert.ok(feed);
    try {
      const token = feed.track('certs/foo/production.json');
      assert.ok(token?.valid());
      t += KEPT_MAX_AGE_MS - 1;
      assert.equal(token?.valid(), true);
      t += 1;
      assert.equal(token?.valid(), false);
    } finally {
      feed.close();
    }
  });

  it('the state directory itself moved away and made again is seen, and the new one is watched', async () => {
    const feed = watchStore(root, { assumeLocal: true });
    assert.ok(feed);
    try {
      const before = feed.track('claims.json');
      assert.ok(before?.valid());
      await fs.rename(root, `${root}.old`);
      await fs.mkdir(root);
      await fs.writeFile(join(root, 'claims.json'), '{"new":true}');
      await feed.settle();
      assert.equal(before?.valid(), false, 'a token of the old directory still vouches');
      const after = feed.track('claims.json');
      assert.ok(after?.valid());
      await fs.writeFile(join(root, 'claims.json'), '{"newer":true}');
      await feed.settle();
      assert.equal(after?.valid(), false, 'the new directory is not watched');
    } finally {
      feed.close();
      await fs.rm(`${root}.old`, { recursive: true, force: true });
    }
  });
});
