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

  it('a restarted sidecar still gives shop to its first holder, whatever the discovery order', async () => {
    const { log } = recorder();
    await new Discoverer(
      platform(() => [SHOP]),
      log,
      { store, clock },
    ).discover();
    // The next process lists the intruder first.
    const found = await new Discoverer(
      platform(() => [INTRUDER, SHOP]),
      log,
      {
        store,
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

  it('a corrupt record is logged at error and replaced, starting from no claims', async () => {
    await store.store(claimsKey(), '{"version":1,"names":{"shop":{"domains":"oops"}}}');
    const { log, lines } = recorder();
    const found = await new Discoverer(
      platform(() => [SHOP]),
      log,
      { store, clock },
    ).discover();
    assert.deepEqual(
      found.specs.map((s) => s.name),
      ['shop'],
    );
    assert.ok(lines.some((l) => l.level === 'error' && /claims record is corrupt/.test(l.msg)));
    const saved = JSON.parse((await store.load(claimsKey()))!.toString()) as {
      names: Record<string, { source: string }>;
    };
    assert.equal(saved.names.shop?.source, 'svc/shop');
  });

  it('read through the record reader, a corrupt record is kept aside as STORE_CORRUPT and claimed again', async () => {
    await store.store(claimsKey(), 'garbage');
    const { log, lines } = recorder();
    const records = new RecordReader(store, clock, log);
    const found = await new Discoverer(
      platform(() => [SHOP]),
      log,
      { store, records, clock },
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

  it('a dry run decides with the stored claims and writes nothing', async () => {
    const { log } = recorder();
    await new Discoverer(
      platform(() => [SHOP]),
      log,
      { store, clock },
    ).discover({
      persist: false,
    });
    assert.equal(await store.load(claimsKey()), undefined);
  });
});
