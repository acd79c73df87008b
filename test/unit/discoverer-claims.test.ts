// The Discoverer's claims record (src/reconcile/discoverer.ts): kept in the
// store across restarts, a corrupt one replaced by a safe start, dry runs
// writing nothing.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CertSpec } from '../../src/domain/types.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import type { Platform } from '../../src/platform/platform.js';
import { Discoverer } from '../../src/reconcile/discoverer.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { claimsKey } from '../../src/store/keys.js';
import { claimsKind } from '../../src/store/record-kinds.js';
import { recordSlot } from '../../src/store/record-slot.js';
import { RecordReader } from '../../src/store/records.js';
import type { LogFields, Logger } from '../../src/util/log.js';

function platform(requests: () => CertSpec[]): Platform {
  return {
    name: 'test',
    holdsCertificates: false,
    discover: async () => ({ specs: requests(), problems: [] }),
    read: async () => undefined,
    push: async () => undefined,
  };
}

function recorder(): { log: Logger; lines: { level: string; msg: string; f: LogFields }[] } {
  const lines: { level: string; msg: string; f: LogFields }[] = [];
  const at =
    (level: string) =>
    (msg: string, f: LogFields = {}) =>
      void lines.push({ level, msg, f });
  const log: Logger = {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: () => log,
  };
  return { log, lines };
}

const SHOP: CertSpec = { name: 'shop', domains: ['shop.example.com'], source: 'svc/shop' };
const INTRUDER: CertSpec = { name: 'x', domains: ['shop.example.com'], source: 'svc/x' };

describe('Discoverer: claims across restarts', () => {
  let dir: string;
  let store: FsCertStore;
  const clock = new FixedClock('2026-12-02T10:00:00Z');
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'claims-'));
    store = new FsCertStore(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  /** The claims record as main.ts wires it: in the store, read through a RecordReader. */
  const claimsIn = (log: Logger) =>
    recordSlot(store, new RecordReader(store, clock, log), claimsKey(), claimsKind);

  it('a restarted sidecar still gives shop to its first holder, whatever the discovery order', async () => {
    const { log } = recorder();
    await new Discoverer(
      platform(() => [SHOP]),
      log,
      { claims: claimsIn(log), clock },
    ).discover();
    // The next process lists the intruder first.
    const found = await new Discoverer(
      platform(() => [INTRUDER, SHOP]),
      log,
      {
        claims: claimsIn(log),
        clock,
      },
    ).discover();
    assert.deepEqual(
      found.specs.map((s) => s.name),
      ['shop'],
    );
    assert.deepEqual(
      found.problems.map((p) => [p.source, p.code]),
      [['svc/x', 'claimed']],
    );
  });

  it('without the store, the first listed would have won (what the record prevents)', async () => {
    const { log } = recorder();
    const found = await new Discoverer(
      platform(() => [INTRUDER, SHOP]),
      log,
      {
        clock,
      },
    ).discover();
    assert.deepEqual(
      found.specs.map((s) => s.name),
      ['x'],
    );
  });

  it('a dry run names a corrupt record at error, decides from no claims, and leaves the record where it is', async () => {
    const corrupt = '{"version":1,"names":{"shop":{"domains":"oops"}}}';
    await store.store(claimsKey(), corrupt);
    const { log, lines } = recorder();
    const found = await new Discoverer(
      platform(() => [SHOP]),
      log,
      { claims: claimsIn(log), clock },
    ).discover({ persist: false });
    assert.deepEqual(
      found.specs.map((s) => s.name),
      ['shop'],
    );
    assert.ok(
      lines.some((l) => l.level === 'error' && /claims record is corrupt/.test(l.msg)),
      JSON.stringify(lines),
    );
    assert.equal((await store.load(claimsKey()))?.toString(), corrupt);
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.startsWith(`${claimsKey()}.corrupt-`)),
      [],
      'a dry run kept it aside',
    );
  });

  it('read through the record reader, a corrupt record is kept aside as STORE_CORRUPT and claimed again', async () => {
    await store.store(claimsKey(), 'garbage');
    const { log, lines } = recorder();
    const found = await new Discoverer(
      platform(() => [SHOP]),
      log,
      { claims: claimsIn(log), clock },
    ).discover();
    assert.deepEqual(
      found.specs.map((s) => s.name),
      ['shop'],
    );
    assert.ok(
      lines.some((l) => l.f.code === 'STORE_CORRUPT' && l.f.record === claimsKey()),
      JSON.stringify(lines),
    );
    const aside = (await readdir(dir)).filter((n) => n.startsWith(`${claimsKey()}.corrupt-`));
    assert.equal(aside.length, 1, 'kept aside');
    const saved = JSON.parse((await store.load(claimsKey()))!.toString()) as {
      names: Record<string, { source: string }>;
    };
    assert.equal(saved.names.shop?.source, 'svc/shop');
  });

  it('a dry run writes no claims record where there was none', async () => {
    const { log } = recorder();
    await new Discoverer(
      platform(() => [SHOP]),
      log,
      { claims: claimsIn(log), clock },
    ).discover({
      persist: false,
    });
    assert.equal(await store.load(claimsKey()), undefined);
  });

  it('a dry run decides with the stored claims and leaves them unchanged', async () => {
    const { log } = recorder();
    await new Discoverer(
      platform(() => [SHOP]),
      log,
      { claims: claimsIn(log), clock },
    ).discover();
    const before = (await store.load(claimsKey()))?.toString();
    const found = await new Discoverer(
      platform(() => [
        INTRUDER,
        SHOP,
        { name: 'new', domains: ['new.example.com'], source: 'svc/new' },
      ]),
      log,
      { claims: claimsIn(log), clock },
    ).discover({ persist: false });
    assert.deepEqual(
      found.specs.map((s) => s.name),
      ['shop', 'new'],
    );
    assert.deepEqual(
      found.problems.map((p) => [p.source, p.code]),
      [['svc/x', 'claimed']],
    );
    assert.equal((await store.load(claimsKey()))?.toString(), before);
  });
});

describe('claims record: parsed once per change', () => {
  it('the same bytes (kept across passes by the daemon) give the very same parsed record; new bytes a new one', () => {
    const reader = new RecordReader(
      { load: async () => undefined } as unknown as FsCertStore,
      new FixedClock('2026-06-01T00:00:00Z'),
      recorder().log,
    );
    const raw = Buffer.from(JSON.stringify({ version: 1, names: {} }));
    const a = reader.parse(raw, claimsKind);
    const b = reader.parse(raw, claimsKind);
    assert.ok(a.ok && b.ok);
    assert.equal(b.value, a.value, 'not parsed again');
    const c = reader.parse(Buffer.from(raw), claimsKind);
    assert.ok(c.ok);
    assert.notEqual(c.value, a.value, 'other bytes are parsed');
  });
});
