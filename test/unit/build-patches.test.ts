import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { patchSource, SOURCE_PATCHES, unpatchedFiles } from '../../scripts/build.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = 'node-cron/dist/_shared.js';

interface Parts {
  readonly [field: string]: unknown;
}
interface CronShared {
  /** LocalizedTime */
  L: new (date: Date, timezone?: string) => { getParts(): Parts; toISO(): string };
  /** TimeMatcher */
  T: new (pattern: string, timezone?: string) => { getNextMatch(date: Date): Date };
}

/** Zones with and without daylight saving, whole-hour and half-hour offsets, both hemispheres. */
const ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'America/St_Johns',
  'Asia/Kolkata',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
];

/** Every 7 h 13 min 17 s over two years: every hour of the day, every weekday, every DST change. */
function* dates(): Generator<Date> {
  const start = Date.UTC(2026, 0, 1, 0, 0, 0, 123);
  const end = Date.UTC(2028, 0, 1);
  for (let t = start; t < end; t += (7 * 3600 + 13 * 60 + 17) * 1000) yield new Date(t);
}

// scripts/build.ts patches node-cron in the bundle so that it matches
// CHECK_SCHEDULE without Intl.DateTimeFormat when no time zone is given
// (which maps ICU's data: 8.4 MB of RSS). The patched module must see the
// same fields, offset and next matches as node-cron's own code.
describe('build patches: node-cron without Intl for the local time zone', () => {
  const file = path.join(ROOT, 'node_modules', SHARED);
  let dir: string;
  let out: string;
  const tzBefore = process.env.TZ;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'build-patches-'));
    out = path.join(dir, '_shared.mjs');
    await writeFile(out, patchSource(SHARED, await readFile(file, 'utf8')));
  });

  /**
   * Both modules, loaded afresh for `zone` (node-cron caches its
   * formatters, which keep the zone they were made in).
   */
  async function load(zone: string): Promise<{ original: CronShared; patched: CronShared }> {
    process.env.TZ = zone;
    const q = `?tz=${encodeURIComponent(zone)}`;
    return {
      original: (await import(pathToFileURL(file).href + q)) as CronShared,
      patched: (await import(pathToFileURL(out).href + q)) as CronShared,
    };
  }

  after(async () => {
    if (tzBefore === undefined) delete process.env.TZ;
    else process.env.TZ = tzBefore;
    await rm(dir, { recursive: true, force: true });
  });

  for (const zone of ZONES) {
    it(`TZ=${zone}: the same date fields, UTC offset and ISO text as node-cron's Intl code`, async () => {
      const { original, patched } = await load(zone);
      let n = 0;
      for (const d of dates()) {
        const want = new original.L(d);
        const got = new patched.L(d);
        assert.deepEqual({ ...got.getParts() }, { ...want.getParts() }, d.toISOString());
        assert.equal(got.toISO(), want.toISO(), d.toISOString());
        n++;
      }
      assert.ok(n > 2000, `${n} dates`);
    });

    it(`TZ=${zone}: the same next matches, across daylight saving changes`, async () => {
      const { original, patched } = await load(zone);
      for (const pattern of ['0 */7 * * * *', '0 30 2 * * *', '0 0 12 * * 1-5', '15 45 23 L * *']) {
        const want = new original.T(pattern);
        const got = new patched.T(pattern);
        for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2027, 0, 1); t += 2.5 * 86400_000) {
          const d = new Date(t);
          assert.equal(
            got.getNextMatch(d).toISOString(),
            want.getNextMatch(d).toISOString(),
            `${pattern} after ${d.toISOString()}`,
          );
        }
      }
    });
  }

  it('no Intl.DateTimeFormat is made without a time zone; one still is with one', async () => {
    const { patched } = await load('Europe/Berlin');
    const Real = Intl.DateTimeFormat;
    let made = 0;
    const counting = function (this: unknown, ...args: ConstructorParameters<typeof Real>) {
      made++;
      return new Real(...args);
    } as unknown as typeof Intl.DateTimeFormat;
    Intl.DateTimeFormat = counting;
    try {
      const d = new Date(Date.UTC(2026, 6, 1, 12));
      new patched.L(d).toISO();
      new patched.T('0 0 * * * *').getNextMatch(d);
      assert.equal(made, 0);
      new patched.L(d, 'Asia/Tokyo').toISO();
      assert.ok(made > 0);
    } finally {
      Intl.DateTimeFormat = Real;
    }
  });
});

describe('build patches: every patched file is in the bundle', () => {
  const all = [...new Set(SOURCE_PATCHES.map((p) => `node_modules/${p.file}`))];

  it('none missing when every patched file was bundled', () => {
    assert.deepEqual(unpatchedFiles([...all, 'src/cli.ts']), []);
  });

  it("names a patched file the bundle did not take (node-cron's CommonJS build instead)", () => {
    const inputs = all
      .filter((f) => !f.endsWith(SHARED))
      .concat('node_modules/node-cron/dist/_shared.cjs');
    assert.deepEqual(unpatchedFiles(inputs), [SHARED]);
  });
});
