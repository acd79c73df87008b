import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inotifyWatchCount } from '../../devenv/proc.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { watchLive, type LiveWatch } from '../../src/deploy/live-watch.js';
import type { CertBundle } from '../../src/domain/types.js';
import { TEMP_MARKER } from '../../src/store/atomic.js';
import { waitFor } from '../support/wait.js';

function bundle(tag: string): CertBundle {
  return { cert: `${tag}-c`, chain: `${tag}-ch`, fullchain: `${tag}-fc`, privkey: `${tag}-k` };
}

describe('watchLive: one OS watch per certificate', () => {
  let dir: string;
  let live: LiveDir;
  let watch: LiveWatch | undefined;
  let events: string[];
  let errors: unknown[];

  const start = async () => {
    watch = await watchLive(
      dir,
      (why) => events.push(why),
      (err) => errors.push(err),
    );
    return watch;
  };
  /** Waits for an event naming `path` (inotify reports in order: what came before it has arrived). */
  const seen = (path: string) =>
    waitFor(() => events.find((e) => e.endsWith(` ${path}`)), { what: `an event for ${path}` });

  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'live-watch-'));
    live = new LiveDir(dir);
    await fs.mkdir(join(dir, 'live'));
    events = [];
    errors = [];
  });
  afterEach(async () => {
    watch?.close();
    watch = undefined;
    await fs.rm(dir, { recursive: true, force: true });
    assert.deepEqual(errors, []);
  });

  it('holds live/ plus one watch per certificate, counted by the kernel, whatever archive/ keeps', async () => {
    const n = 40;
    // Two versions each, as after a renewal: 3 directories and 8 files per
    // certificate in archive/ (chokidar at depth 3 watched about 11 of them).
    for (let i = 0; i < n; i++) {
      await live.write(`c${i}.test`, bundle('v1'));
      await live.write(`c${i}.test`, bundle('v2'));
    }
    const before = inotifyWatchCount(process.pid);
    const w = await start();
    assert.equal(w.watchCount(), n + 1);
    assert.equal(inotifyWatchCount(process.pid) - before, n + 1);

    // A renewal swaps the link: the watch moves to the new version, none is added.
    await live.write('c0.test', bundle('v3'));
    await seen('live/c0.test');
    await w.settled();
    assert.equal(inotifyWatchCount(process.pid) - before, n + 1);

    // A certificate removed: its watch goes.
    await live.remove('c1.test');
    await seen('live/c1.test');
    await w.settled();
    assert.equal(w.watchCount(), n);
    assert.equal(inotifyWatchCount(process.pid) - before, n);

    w.close();
    assert.equal(inotifyWatchCount(process.pid) - before, 0);
  });

  it('reports a file deleted through the link, a removed link, and follows a swap to the new version', async () => {
    await live.write('a.test', bundle('1'));
    await live.write('a.test', bundle('2'));
    await live.write('b.test', bundle('1'));
    const w = await start();

    await fs.rm(join(dir, 'live', 'a.test', 'privkey.pem'));
    await seen('live/a.test/privkey.pem');

    await live.write('a.test', bundle('3'));
    await seen('live/a.test');
    await w.settled();
    const served = await fs.realpath(join(dir, 'live', 'a.test'));
    const previous = join(dir, 'archive', 'a.test', '2');
    assert.notEqual(served, previous);
    // The version before is kept but not served: not watched. The event after it shows the order.
    events.length = 0;
    await fs.rm(join(previous, 'cert.pem'));
    await fs.rm(join(dir, 'live', 'a.test', 'chain.pem'));
    await seen('live/a.test/chain.pem');
    assert.deepEqual(events, ['rename live/a.test/chain.pem']);

    // The link itself removed.
    await fs.rm(join(dir, 'live', 'b.test'));
    await seen('live/b.test');
    // The temp links and files of atomic writes never reach the caller.
    assert.ok(!events.some((e) => e.includes(TEMP_MARKER)), events.join('\n'));
  });

  it('watches a version directory removed and made again under the same path', async () => {
    await live.write('a.test', bundle('1'));
    await live.write('a.test', bundle('2'));
    const w = await start();
    const served = await fs.realpath(join(dir, 'live', 'a.test'));
    await fs.rm(served, { recursive: true });
    // Its files' deletions (the directory's own may come after the watch is dropped).
    await waitFor(() => events.find((e) => e.startsWith('rename live/a.test/')), {
      what: 'an event inside live/a.test',
    });
    await waitFor(async () => (await w.settled(), w.watchCount() === 1), {
      what: 'the watch of the removed version dropped (the link dangles: only live/ is watched)',
    });

    // The next write takes the same version number, so the same path, a new directory.
    await live.write('a.test', bundle('3'));
    assert.equal(await fs.realpath(join(dir, 'live', 'a.test')), served);
    await seen('live/a.test');
    await w.settled();
    assert.equal(w.watchCount(), 2);
    await fs.rm(join(served, 'fullchain.pem'));
    await seen('live/a.test/fullchain.pem');
  });
});
