import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { errorCode } from '../../src/domain/errors.js';
import type { CertBundle } from '../../src/domain/types.js';

/** A bundle whose four parts all carry `tag`, so a mix of two bundles shows. */
function bundle(tag: string): CertBundle {
  return {
    cert: `${tag}-cert`,
    chain: `${tag}-chain`,
    fullchain: `${tag}-cert\n${tag}-chain`,
    privkey: `${tag}-key`,
  };
}

async function modeOf(path: string): Promise<number> {
  return (await fs.stat(path)).mode & 0o777;
}

describe('LiveDir', () => {
  let dir: string;
  let stateDir: string;
  let live: LiveDir;

  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'live-dir-'));
    stateDir = join(dir, 'state');
    live = new LiveDir(stateDir);
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads back what it wrote, through the certbot-style paths', async () => {
    await live.write('example.com', bundle('A'));
    assert.deepEqual(await live.read('example.com'), bundle('A'));
    const p = live.path('example.com');
    assert.equal(p.dir, join(stateDir, 'live', 'example.com'));
    assert.equal(await fs.readFile(p.cert, 'utf8'), 'A-cert');
    assert.equal(await fs.readFile(p.chain, 'utf8'), 'A-chain');
    assert.equal(await fs.readFile(p.fullchain, 'utf8'), 'A-cert\nA-chain');
    assert.equal(await fs.readFile(p.privkey, 'utf8'), 'A-key');
  });

  it('returns undefined for a name never written', async () => {
    assert.equal(await live.read('example.com'), undefined);
  });

  it('makes the key 0600, the certificates 0644 and its directories 0700', async () => {
    await live.write('example.com', bundle('A'));
    const p = live.path('example.com');
    assert.equal(await modeOf(p.privkey), 0o600);
    assert.equal(await modeOf(p.cert), 0o644);
    assert.equal(await modeOf(p.chain), 0o644);
    assert.equal(await modeOf(p.fullchain), 0o644);
    assert.equal(await modeOf(p.dir), 0o700);
    assert.equal(await modeOf(join(stateDir, 'live')), 0o700);
    assert.equal(await modeOf(join(stateDir, 'archive', 'example.com')), 0o700);
  });

  it('points live/<name> at the version with a relative link, so the volume can be mounted anywhere', async () => {
    await live.write('example.com', bundle('A'));
    const target = await fs.readlink(join(stateDir, 'live', 'example.com'));
    assert.equal(target, join('..', 'archive', 'example.com', '1'));
    // Still readable after the whole state directory moves.
    const moved = join(dir, 'moved');
    await fs.rename(stateDir, moved);
    assert.deepEqual(await new LiveDir(moved).read('example.com'), bundle('A'));
  });

  it('keeps only the two newest versions, the live one being the newest', async () => {
    await live.write('example.com', bundle('A'));
    await live.write('example.com', bundle('B'));
    assert.deepEqual((await fs.readdir(join(stateDir, 'archive', 'example.com'))).sort(), [
      '1',
      '2',
    ]);
    await live.write('example.com', bundle('C'));
    assert.deepEqual((await fs.readdir(join(stateDir, 'archive', 'example.com'))).sort(), [
      '2',
      '3',
    ]);
    assert.deepEqual(await live.read('example.com'), bundle('C'));
    assert.equal(
      await fs.readFile(join(stateDir, 'archive', 'example.com', '2', 'cert.pem'), 'utf8'),
      'B-cert',
    );
  });

  it('leaves no temp links behind in live/', async () => {
    await live.write('example.com', bundle('A'));
    await live.write('example.com', bundle('B'));
    assert.deepEqual(await fs.readdir(join(stateDir, 'live')), ['example.com']);
  });

  it('keeps names apart', async () => {
    await live.write('a.example', bundle('A'));
    await live.write('b.example', bundle('B'));
    assert.deepEqual(await live.read('a.example'), bundle('A'));
    assert.deepEqual(await live.read('b.example'), bundle('B'));
  });

  it('replaces a real directory left at live/<name> by another tool, keeping it as the previous version', async () => {
    const old = join(stateDir, 'live', 'example.com');
    await fs.mkdir(old, { recursive: true });
    for (const [f, v] of Object.entries({
      'cert.pem': 'OLD-cert',
      'chain.pem': 'OLD-chain',
      'fullchain.pem': 'OLD-cert\nOLD-chain',
      'privkey.pem': 'OLD-key',
    })) {
      await fs.writeFile(join(old, f), v);
    }
    assert.deepEqual(await live.read('example.com'), bundle('OLD'));
    await live.write('example.com', bundle('A'));
    assert.ok((await fs.lstat(old)).isSymbolicLink());
    assert.deepEqual(await live.read('example.com'), bundle('A'));
    const archived = join(stateDir, 'archive', 'example.com', '1', 'privkey.pem');
    assert.equal(await fs.readFile(archived, 'utf8'), 'OLD-key');
  });

  it('removes the live link and the archive, and removing again is not an error', async () => {
    await live.write('example.com', bundle('A'));
    await live.write('other.example', bundle('B'));
    await live.remove('example.com');
    assert.equal(await live.read('example.com'), undefined);
    assert.deepEqual(await fs.readdir(join(stateDir, 'live')), ['other.example']);
    assert.deepEqual(await fs.readdir(join(stateDir, 'archive')), ['other.example']);
    await live.remove('example.com');
    assert.deepEqual(await live.read('other.example'), bundle('B'));
  });

  describe('refuses a hostile certificate name', () => {
    const hostile: [string, string][] = [
      ['a parent reference', '..'],
      ['a path out', '../x'],
      ['a slash', 'a/b'],
      ['an absolute path', '/etc'],
      ['the empty name', ''],
      ['a hidden name', '.hidden'],
      ['two dots inside', 'a..b'],
      ['upper case', 'Example.com'],
      ['a NUL byte', 'a\0b'],
      ['a space', 'a b'],
      ['a backslash', 'a\\b'],
      ['201 characters', 'a'.repeat(201)],
    ];
    for (const [what, name] of hostile) {
      it(`with ${what}, in every operation, creating nothing`, async () => {
        const refused = (err: unknown) => errorCode(err) === 'CERT_NAME_INVALID';
        await assert.rejects(live.write(name, bundle('A')), refused);
        await assert.rejects(live.read(name), refused);
        await assert.rejects(live.remove(name), refused);
        assert.throws(() => live.path(name), refused);
        assert.deepEqual(await fs.readdir(dir), []);
      });
    }

    it('but accepts a name of 200 characters', async () => {
      await live.write('a'.repeat(200), bundle('A'));
      assert.deepEqual(await live.read('a'.repeat(200)), bundle('A'));
    });
  });

  it('never hands a reader a certificate and key from different versions while a writer swaps them', async () => {
    await live.write('example.com', bundle('A'));
    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 0; i < 50; i++) await live.write('example.com', bundle(i % 2 ? 'A' : 'B'));
      } finally {
        writing = false;
      }
    })();
    const seen = new Set<string>();
    let reads = 0;
    try {
      while (writing) {
        const b = await live.read('example.com');
        assert.ok(b, 'live/example.com disappeared during a swap');
        const tag = b.cert.split('-')[0] ?? '';
        assert.deepEqual(b, bundle(tag), `mixed bundle: ${JSON.stringify(b)}`);
        seen.add(tag);
        reads++;
      }
    } finally {
      // Even when the reader failed: the writer must be done before cleanup.
      await writer;
    }
    // Otherwise the reader never overlapped the writer and proved nothing.
    assert.ok(reads >= 10, `only ${reads} reads`);
    assert.deepEqual([...seen].sort(), ['A', 'B']);
  });
});
