import assert from 'node:assert/strict';
import { LAST_RESORT, collectWhenIdle } from '../../src/app/idle-gc.js';
import { type Line, recordingLogger } from '../support/reconcile.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('idle-gc: the garbage of a pass is collected once the daemon is idle', () => {
  it('collects once after a burst of passes, never while a pass runs', async () => {
    const lines: Line[] = [];
    const calls: string[] = [];
    let inPass = false;
    const { pass, stop } = collectWhenIdle(
      async (ms: number) => {
        inPass = true;
        await sleep(ms);
        inPass = false;
        return ms;
      },
      {
        gc: () => calls.push(inPass ? 'during a pass' : 'idle'),
        delayMs: 40,
        log: recordingLogger(lines),
        heapUsed: () => 1,
      },
    );
    assert.equal(await pass(10), 10, 'the pass result is handed back');
    await pass(10);
    await Promise.all([pass(60), sleep(30).then(() => pass(10))]);
    assert.deepEqual(calls, [], 'nothing before the daemon has been idle for the delay');
    await sleep(100);
    assert.deepEqual(calls, ['idle'], 'one collection for the burst');
    assert.equal(lines.filter((l) => l.msg === 'heap collected after the pass').length, 1);
    await pass(5);
    stop();
    await sleep(100);
    assert.deepEqual(calls, ['idle'], 'stop() cancels the pending collection');
  });

  it("asks for V8's last-resort collection, the one that hands freed pages back", async () => {
    const asked: unknown[] = [];
    const { pass } = collectWhenIdle(() => Promise.resolve(1), {
      gc: (options) => asked.push(options),
      delayMs: 10,
      log: recordingLogger([]),
    });
    await pass();
    await sleep(50);
    assert.deepEqual(asked, [{ type: 'major', execution: 'sync', flavor: 'last-resort' }]);
    assert.deepEqual(LAST_RESORT, asked[0]);
  });

  it('a pass that throws schedules the collection too; without gc nothing happens', async () => {
    let collected = 0;
    const failing = collectWhenIdle(() => Promise.reject(new Error('boom')), {
      gc: () => collected++,
      delayMs: 10,
      log: recordingLogger([]),
    });
    await assert.rejects(failing.pass(), /boom/);
    await sleep(50);
    assert.equal(collected, 1);
    const without = collectWhenIdle(() => Promise.resolve(1), {
      gc: undefined,
      delayMs: 10,
      log: recordingLogger([]),
    });
    assert.equal(await without.pass(), 1);
  });

  it('collects before a pass that comes before the delay when the last pass grew the heap twice over, not after an idle pass', async () => {
    const lines: Line[] = [];
    const calls: string[] = [];
    let heap = 10;
    let inPass = false;
    const { pass, stop } = collectWhenIdle(
      async (grow: number) => {
        inPass = true;
        heap += grow;
        await sleep(5);
        inPass = false;
      },
      {
        gc: () => {
          calls.push(inPass ? 'during a pass' : `before, heap ${heap}`);
          heap = 10;
        },
        delayMs: 1000,
        log: recordingLogger(lines),
        heapUsed: () => heap,
      },
    );
    await pass(15); // the pass that did the work: 10 -> 25
    await pass(3); // comes at once: its garbage goes first, 25 -> 10 -> 13
    await pass(3); // after an idle pass: 13 -> 16, not twice over 10
    assert.deepEqual(calls, ['before, heap 25']);
    await pass(20); // twice over again, 16 -> 36,
    await pass(1); // but within the delay of the last early collection: none
    assert.deepEqual(calls, ['before, heap 25'], 'at most one early collection per delay');
    const early = lines.filter((l) => l.msg === 'heap collected after the pass');
    assert.equal(early.length, 1);
    assert.match(String(early[0]?.fields.early), /before the idle delay/);
    stop();
  });
});
