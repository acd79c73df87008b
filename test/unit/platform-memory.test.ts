import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CertSpec } from '../../src/domain/types.js';
import type { Clock } from '../../src/lifecycle/clock.js';
import {
  lostRecordSources,
  parseReloadRecord,
  parseSourcesRecord,
  reloadsDue,
  restoredStoppedAt,
  servedFingerprint,
  withinGrace,
} from '../../src/lifecycle/platform-memory.js';
import { DockerPlatform } from '../../src/platform/docker/docker-platform.js';
import type {
  ContainerSummary,
  DockerEngineClient,
} from '../../src/platform/docker/engine-client.js';
import { DOMAINS_LABEL } from '../../src/platform/labels.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { platformRecordKey } from '../../src/store/keys.js';
import { reloadsKind, sourcesKind } from '../../src/store/record-kinds.js';
import { recordSlot } from '../../src/store/record-slot.js';
import { RecordReader } from '../../src/store/records.js';
import { silentLogger } from '../../src/util/log.js';

// Issue 16 item 5: the Docker grace period and what reload targets were
// signalled for survive a restart (lifecycle/platform-memory.ts).

const T0 = Date.parse('2026-06-01T00:00:00Z');
const HOUR = 3600_000;

describe('platform memory: decisions', () => {
  describe('withinGrace', () => {
    const rows: [string, number | undefined, number, number, boolean][] = [
      ['a serving source is always wanted', undefined, T0, 0, true],
      [
        'a source stopped one hour ago is wanted within a two-hour grace',
        T0 - HOUR,
        T0,
        2 * HOUR,
        true,
      ],
      ['a source stopped exactly the grace ago is dropped', T0 - 2 * HOUR, T0, 2 * HOUR, false],
      ['a source stopped just now is dropped with no grace at all', T0, T0, 0, false],
      ['a never-started source (stopped at -infinity) is never wanted', -Infinity, T0, 1e12, false],
    ];
    for (const [name, stopped, now, grace, want] of rows) {
      it(name, () => assert.equal(withinGrace(stopped, now, grace), want));
    }
  });

  describe('restoredStoppedAt', () => {
    const spec: CertSpec = { name: 'a', domains: ['a.test'], source: 's' };
    const rows: [string, string | undefined, number][] = [
      [
        'a source that stopped before the restart keeps its stop time',
        '2026-05-31T23:00:00.000Z',
        T0 - HOUR,
      ],
      ['a source serving when last seen and gone now starts its grace now', undefined, T0],
    ];
    for (const [name, stoppedAt, want] of rows) {
      it(name, () =>
        assert.equal(
          restoredStoppedAt(
            { name: 'c', specs: [spec], ...(stoppedAt && { stoppedAt }), gone: true },
            T0,
          ),
          want,
        ),
      );
    }
  });

  it('a lost sources record keeps every stored certificate, its grace starting now', () => {
    const r = lostRecordSources(
      [
        { name: 'a', domains: ['a.test', 'www.a.test'], profile: 'shortlived' },
        { name: 'b', domains: ['b.test'] },
        { name: 'empty', domains: [] },
      ],
      new Date(T0),
    );
    assert.deepEqual(Object.keys(r.sources).sort(), ['lost-record:a', 'lost-record:b']);
    const a = r.sources['lost-record:a'];
    assert.equal(a?.stoppedAt, new Date(T0).toISOString());
    assert.equal(a?.gone, true);
    assert.deepEqual(a?.specs[0]?.domains, ['a.test', 'www.a.test']);
    assert.equal(a?.specs[0]?.profile, 'shortlived');
  });

  describe('reloadsDue', () => {
    const fp = servedFingerprint([{ name: 'a', serial: '01' }]);
    const rows: [string, string[], Map<string, string>, string[]][] = [
      ['an idle pass signals nobody', ['n1'], new Map([['n1', fp]]), []],
      ['a changed served set signals the target', ['n1'], new Map([['n1', 'old']]), ['n1']],
      ['a target never signalled is signalled', ['n1', 'n2'], new Map([['n1', fp]]), ['n2']],
      [
        'a lost record (nothing known) signals every target once',
        ['n1', 'n2'],
        new Map(),
        ['n1', 'n2'],
      ],
    ];
    for (const [name, targets, last, want] of rows) {
      it(name, () => assert.deepEqual(reloadsDue(targets, fp, last), want));
    }
  });

  it('the served fingerprint ignores order and changes with any serial', () => {
    const ab = servedFingerprint([
      { name: 'a', serial: '01' },
      { name: 'b', serial: '02' },
    ]);
    const ba = servedFingerprint([
      { name: 'b', serial: '02' },
      { name: 'a', serial: '01' },
    ]);
    assert.equal(ab, ba);
    assert.notEqual(
      ab,
      servedFingerprint([
        { name: 'a', serial: '01' },
        { name: 'b', serial: '03' },
      ]),
    );
  });

  describe('parsing', () => {
    const rows: [string, string, boolean][] = [
      ['an empty record parses', '{"version":1,"sources":{}}', true],
      [
        'a full entry parses',
        '{"version":1,"sources":{"x":{"name":"n","specs":[{"name":"a","domains":["a.test"],"source":"s"}],"stoppedAt":"2026-06-01T00:00:00Z","gone":true}}}',
        true,
      ],
      ['garbage is refused', '{"version":1,"sour', false],
      ['another version is refused', '{"version":2,"sources":{}}', false],
      [
        'a spec without hostnames is refused',
        '{"version":1,"sources":{"x":{"name":"n","specs":[{"name":"a","domains":[],"source":"s"}]}}}',
        false,
      ],
      [
        'a stop time that is not a date is refused',
        '{"version":1,"sources":{"x":{"name":"n","specs":[],"stoppedAt":"soon"}}}',
        false,
      ],
    ];
    for (const [name, text, good] of rows) {
      it(`sources record: ${name}`, () =>
        assert.equal(typeof parseSourcesRecord(text) !== 'string', good));
    }
    it('reload record: a fingerprint per target parses, anything else is refused', () => {
      assert.notEqual(typeof parseReloadRecord('{"version":1,"targets":{"x":"ab"}}'), 'string');
      assert.equal(typeof parseReloadRecord('{"version":1,"targets":{"x":1}}'), 'string');
      assert.equal(typeof parseReloadRecord(''), 'string');
    });
  });
});

/** An engine that lists what the test says; every container is running. */
class FakeEngine {
  containers: ContainerSummary[] = [];
  signals: string[] = [];
  async listContainers(filters?: { label?: string[] }): Promise<ContainerSummary[]> {
    if (filters?.label) return this.containers.filter((c) => c.Labels?.['reload'] === 'true');
    return this.containers;
  }
  async inspect(): Promise<undefined> {
    return undefined;
  }
  async signal(id: string): Promise<boolean> {
    this.signals.push(id);
    return true;
  }
}

class MovableClock implements Clock {
  constructor(public ms: number) {}
  now(): Date {
    return new Date(this.ms);
  }
}

describe('platform memory: DockerPlatform over a real FsCertStore', () => {
  let dir: string;
  let store: FsCertStore;
  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'pmem-'));
    store = new FsCertStore(dir);
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  function sidecar(
    engine: FakeEngine,
    clock: Clock,
    stored: { name: string; domains: string[] }[] = [],
  ) {
    const records = new RecordReader(store, clock, silentLogger);
    return new DockerPlatform(engine as unknown as DockerEngineClient, {
      domains: async () => '',
      log: silentLogger,
      stoppedGraceMs: 10 * HOUR,
      clock,
      reloadLabel: 'reload=true',
      sources: recordSlot(store, records, platformRecordKey('docker-sources'), sourcesKind),
      reloads: recordSlot(store, records, platformRecordKey('docker-reloads'), reloadsKind),
      storedCertificates: async () => stored,
    });
  }
  const web: ContainerSummary = {
    Id: 'a'.repeat(64),
    Names: ['/web'],
    State: 'running',
    Labels: { [DOMAINS_LABEL]: 'web.test' },
  };
  const names = (d: { specs: readonly CertSpec[] }) => d.specs.map((s) => s.name).sort();

  it('a removed container is kept by a restarted sidecar within the grace, counted from when the first one noticed', async () => {
    const engine = new FakeEngine();
    const clock = new MovableClock(T0);
    engine.containers = [web];
    assert.deepEqual(names(await sidecar(engine, clock).discover()), ['web.test']);
    engine.containers = [];
    clock.ms = T0 + HOUR; // noticed gone here
    assert.deepEqual(names(await sidecar(engine, clock).discover()), ['web.test']);
    clock.ms = T0 + 10 * HOUR; // another restart, still within 10 h of the notice
    assert.deepEqual(names(await sidecar(engine, clock).discover()), ['web.test']);
    clock.ms = T0 + 11 * HOUR; // past it
    assert.deepEqual(names(await sidecar(engine, clock).discover()), []);
  });

  it('a dry run reads the record but writes nothing', async () => {
    const engine = new FakeEngine();
    engine.containers = [web];
    await sidecar(engine, new MovableClock(T0)).discover({ persist: false });
    assert.equal(await store.exists(platformRecordKey('docker-sources')), false);
  });

  it('a corrupt sources record is kept aside, and every stored certificate nobody asks for starts its grace now', async () => {
    const engine = new FakeEngine();
    engine.containers = [web];
    await store.store(platformRecordKey('docker-sources'), '{"version":1,"sour');
    const clock = new MovableClock(T0);
    const stored = [
      { name: 'web.test', domains: ['web.test'] },
      { name: 'old.test', domains: ['old.test'] },
    ];
    const found = await sidecar(engine, clock, stored).discover();
    assert.deepEqual(names(found), ['old.test', 'web.test']);
    // web.test is asked for by its container, not twice.
    assert.equal(found.specs.filter((s) => s.name === 'web.test').length, 1);
    const aside = (await store.list('platform')).filter((n) => n.includes('.corrupt-'));
    assert.equal(aside.length, 1, 'the corrupt record is kept aside');
    // The recovered grace persists across a restart, then ends.
    clock.ms = T0 + 9 * HOUR;
    assert.deepEqual(names(await sidecar(engine, clock).discover()), ['old.test', 'web.test']);
    clock.ms = T0 + 10 * HOUR;
    assert.deepEqual(names(await sidecar(engine, clock).discover()), ['web.test']);
  });

  it('an idle first pass of a restarted sidecar signals nobody; a change does; a lost record signals once', async () => {
    const engine = new FakeEngine();
    const clock = new MovableClock(T0);
    const nginx: ContainerSummary = {
      Id: 'b'.repeat(64),
      Names: ['/nginx'],
      State: 'running',
      Labels: { reload: 'true' },
    };
    engine.containers = [nginx];
    const a = [{ name: 'a', serial: '01' }];
    await sidecar(engine, clock).reload(a);
    assert.equal(engine.signals.length, 1, 'the first ever pass signals');
    await sidecar(engine, clock).reload(a);
    assert.equal(engine.signals.length, 1, 'a restarted idle pass signals nobody');
    await sidecar(engine, clock).reload([{ name: 'a', serial: '02' }]);
    assert.equal(engine.signals.length, 2, 'a changed served set signals');
    await store.store(platformRecordKey('docker-reloads'), 'garbage');
    await sidecar(engine, clock).reload([{ name: 'a', serial: '02' }]);
    assert.equal(engine.signals.length, 3, 'a lost record: every target is signalled once');
    await sidecar(engine, clock).reload([{ name: 'a', serial: '02' }]);
    assert.equal(engine.signals.length, 3, 'and then no more');
  });
});
