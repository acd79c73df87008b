import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import {
  accountKeyKey,
  accountRecordKey,
  ariKey,
  backoffKey,
  issuersKey,
  orderJournalKey,
  rateLedgerKey,
  storedKey,
} from '../../src/store/keys.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import { runSidecar, sidecarEnv, type RunResult } from '../support/sidecar.js';

/**
 * Issue 16: every record the sidecar keeps, damaged in every way a bad disk,
 * a careless `cp` or a half-restored backup damages it, against the real
 * Pebble 2.9 and nginx. Each row ends with a valid production certificate,
 * the damaged record kept aside (never deleted), the problem named as a
 * local-state one (STORE_CORRUPT), and an order placed only where no valid
 * copy was left. Orders are counted where they land: Pebble's own log
 * ("Added order").
 */

const explain = (r: RunResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr.slice(-3000)}`;

type Corruption = 'garbage' | 'truncated' | 'empty' | 'wrong shape' | 'cert/key mismatch';

/** What a record becomes under each corruption. `other` is another certificate's record. */
function corrupt(kind: Corruption, good: Buffer, pem: boolean, other?: Buffer): Buffer {
  switch (kind) {
    case 'garbage':
      return Buffer.concat([Buffer.from('\u0001{garbage'), good.subarray(8)]);
    case 'truncated':
      return good.subarray(0, Math.floor(good.length / 2));
    case 'empty':
      return Buffer.alloc(0);
    case 'wrong shape':
      // A key file holding a certificate; a JSON record holding another shape.
      return pem
        ? Buffer.from(
            (JSON.parse(other?.toString() ?? '{}') as { bundle: { cert: string } }).bundle.cert,
          )
        : Buffer.from(JSON.stringify({ version: 2, data: [1, 2, 3] }));
    case 'cert/key mismatch': {
      const mine = JSON.parse(good.toString()) as { bundle: { privkey: string } };
      const theirs = JSON.parse(other?.toString() ?? '{}') as { bundle: { privkey: string } };
      mine.bundle.privkey = theirs.bundle.privkey;
      return Buffer.from(JSON.stringify(mine));
    }
  }
}

describe('e2e: corrupt state heals itself (issue 16)', function () {
  this.timeout(600_000);
  let env: DevEnv;
  const NAME = 'heal.demo.test';
  const OTHER = 'other.heal.demo.test';

  const file = (key: string) => path.join(env.certDir, ...key.split('/'));
  const pebbleOrders = async () => {
    const count = async (which: string) =>
      (
        (await readFile(path.join(env.dir, `pebble-${which}.log`), 'utf8')).match(/Added order/g) ??
        []
      ).length;
    return { staging: await count('staging'), production: await count('production') };
  };
  const once = (domains: string, extra: Record<string, string> = {}) =>
    runSidecar(['once'], sidecarEnv(env, { DOMAINS: domains, STAGING: 'false', ...extra }));
  const asideOf = async (key: string) => {
    const base = path.basename(file(key));
    return (await readdir(path.dirname(file(key)))).filter((n) => n.startsWith(`${base}.corrupt-`));
  };
  const servedFromProduction = async (name: string) => {
    const full = await readFile(path.join(env.certDir, 'live', name, 'fullchain.pem'), 'utf8');
    return chainVerifiesTo(full, await env.production.getRootPem());
  };

  /** Which corrupt record cost how many orders (printed at the end, for the closing note). */
  const costs: string[] = [];

  before(async () => {
    env = await startDevEnv();
    for (const name of [NAME, OTHER]) {
      const r = await once(name);
      assert.equal(r.code, 0, explain(r));
    }
  });
  after(async () => {
    if (costs.length) console.log(`\n    orders per corrupt record:\n${costs.join('\n')}`);
    await env?.stop();
  });

  const prod = () => env.production.directoryUrl;
  const stag = () => env.staging.directoryUrl;
  const ROWS: { record: string; key: () => string; kinds: Corruption[]; pem?: boolean }[] = [
    {
      record: 'production certificate',
      key: () => storedKey(NAME, 'production'),
      kinds: ['garbage', 'truncated', 'empty', 'wrong shape', 'cert/key mismatch'],
    },
    {
      record: 'staging certificate',
      key: () => storedKey(NAME, 'staging'),
      // Mismatch first: once kept aside, nothing issues staging again.
      kinds: ['cert/key mismatch', 'garbage'],
    },
    {
      record: 'ARI state',
      key: () => ariKey(NAME, 'production'),
      kinds: ['garbage', 'empty', 'wrong shape'],
    },
    {
      record: 'retry schedule',
      key: () => backoffKey(NAME),
      kinds: ['garbage', 'wrong shape'],
    },
    {
      record: 'account',
      key: () => accountRecordKey(prod()),
      kinds: ['garbage', 'empty', 'wrong shape'],
    },
    {
      record: 'account key',
      key: () => accountKeyKey(prod()),
      kinds: ['truncated', 'empty', 'wrong shape'],
      pem: true,
    },
  ];

  for (const row of ROWS) {
    for (const kind of row.kinds) {
      it(`${row.record}, ${kind}: kept aside, named STORE_CORRUPT, ends valid with no order`, async () => {
        const key = row.key();
        // The retry schedule exists only after a failure: this one is planted.
        const good = await readFile(file(key)).catch(() =>
          Buffer.from(JSON.stringify({ attempts: 1, nextRetry: new Date(0).toISOString() })),
        );
        const other = await readFile(file(storedKey(OTHER, 'production')));
        await writeFile(file(key), corrupt(kind, good, row.pem === true, other));
        const asideBefore = (await asideOf(key)).length;
        const before = await pebbleOrders();

        const r = await once(NAME);

        assert.equal(r.code, 0, explain(r));
        const after = await pebbleOrders();
        const orders = after.staging - before.staging + (after.production - before.production);
        costs.push(`    ${row.record} (${kind}): ${orders}`);
        assert.equal(orders, 0, `orders placed\n${explain(r)}`);
        assert.equal((await asideOf(key)).length, asideBefore + 1, 'kept aside');
        const warned = r.logs.filter(
          (l) => l.message === 'corrupt record in the state' && l.record === key,
        );
        assert.equal(warned.length, 1, explain(r));
        assert.equal(warned[0]?.code, 'STORE_CORRUPT');
        assert.doesNotMatch(r.stdout + r.stderr, /ACME_BAD_RESPONSE|PLATFORM_/, explain(r));
        assert.ok(await servedFromProduction(NAME), 'serves a production certificate');
        assert.match(
          r.stdout,
          new RegExp(`^ok {3}${NAME.replace(/\./g, '\\.')} .*phase=production`, 'm'),
        );
        if (row.record === 'production certificate') {
          assert.match(
            r.stdout,
            /STORE_CORRUPT .*production\.json kept aside as .*; adopted back from live\//,
          );
        }
        if (row.record === 'account') {
          assert.equal(
            r.logs.filter(
              (l) => l.message === 'ACME account found again with its key (onlyReturnExisting)',
            ).length,
            1,
            explain(r),
          );
          assert.equal(r.logs.filter((l) => l.message === 'ACME account registered').length, 0);
        }
        if (row.record === 'account key') {
          assert.equal(
            r.logs.filter(
              (l) =>
                l.level === 'warn' &&
                l.message ===
                  'no usable ACME account key: registering a new account with a new key',
            ).length,
            1,
            explain(r),
          );
        }
      });
    }
  }

  for (const [what, records, want] of [
    ['the production certificate', ['production'], { staging: 0, production: 1 }],
    ['both CA certificates', ['staging', 'production'], { staging: 1, production: 1 }],
  ] as const) {
    it(`${what} corrupt and nothing valid in live/: issued again, staging first where staging is not proven`, async () => {
      // A certificate of its own, issued from both CAs here: the rows above
      // keep aside (and so lose) NAME's staging record on purpose.
      const name = `${records.join('-')}.lost.heal.demo.test`;
      const issued = await once(name);
      assert.equal(issued.code, 0, explain(issued));
      for (const phase of records) await writeFile(file(storedKey(name, phase)), 'garbage');
      await rm(path.join(env.certDir, 'live', name), { recursive: true, force: true });
      const before = await pebbleOrders();
      const r = await once(name);
      assert.equal(r.code, 0, explain(r));
      const after = await pebbleOrders();
      const got = {
        staging: after.staging - before.staging,
        production: after.production - before.production,
      };
      costs.push(
        `    ${what} (garbage), live/ removed: ${got.staging} staging + ${got.production} production`,
      );
      assert.deepEqual(got, want, explain(r));
      assert.match(r.stdout, /STORE_CORRUPT .*production\.json kept aside as .*; issued again/);
      assert.ok(await servedFromProduction(name));
    });
  }

  it('a corrupt account, two sidecars on one state at once: found again once, under the account lock', async () => {
    const key = accountRecordKey(prod());
    await writeFile(file(key), '{"url": 7}');
    const asideBefore = (await asideOf(key)).length;
    const [a, b] = await Promise.all([once(NAME), once(NAME)]);
    for (const r of [a, b]) assert.equal(r.code, 0, explain(r));
    const found = [a, b].flatMap((r) =>
      r.logs.filter(
        (l) => l.message === 'ACME account found again with its key (onlyReturnExisting)',
      ),
    );
    assert.equal(found.length, 1, `${explain(a)}\n${explain(b)}`);
    assert.equal((await asideOf(key)).length, asideBefore + 1, 'kept aside once');
    assert.equal(
      [a, b].flatMap((r) => r.logs.filter((l) => l.message === 'ACME account registered')).length,
      0,
    );
  });

  it('a corrupt production certificate and issuers record: the CA itself recognises the copy in live/', async () => {
    for (const key of [storedKey(NAME, 'production'), issuersKey(prod())]) {
      await writeFile(file(key), 'garbage');
    }
    const before = await pebbleOrders();
    const r = await once(NAME);
    assert.equal(r.code, 0, explain(r));
    const after = await pebbleOrders();
    assert.deepEqual(after, before, `no order\n${explain(r)}`);
    costs.push('    production certificate + CA issuers (garbage): 0');
    assert.equal((await asideOf(issuersKey(prod()))).length, 1, 'issuers record kept aside');
    assert.match(r.stdout, /adopted back from live\//);
  });

  it('a corrupt order journal: the CA is searched for the order in flight, and it is resumed', async () => {
    const name = 'journal.heal.demo.test';
    // The staging order of a new certificate, left pending at the CA by a
    // "previous attempt" (placed here with the sidecar's own account), and
    // its journal lost.
    await placePendingOrder(env, name);
    await writeFile(file(orderJournalKey(stag(), name)), '{"url": "https://');
    const before = await pebbleOrders();
    const r = await once(name);
    assert.equal(r.code, 0, explain(r));
    const after = await pebbleOrders();
    assert.equal(
      after.staging - before.staging,
      0,
      `the pending staging order was resumed\n${explain(r)}`,
    );
    assert.equal(after.production - before.production, 1, 'one production order');
    costs.push('    order journal, order pending at the CA (truncated): 1 (production only)');
    assert.equal(
      r.logs.filter(
        (l) => l.message === 'found an order in flight at the CA for these names; resuming it',
      ).length,
      1,
      explain(r),
    );
    assert.equal((await asideOf(orderJournalKey(stag(), name))).length, 1);
    assert.ok(await servedFromProduction(name));
  });

  it('done when: every file under STATE_DIR but live/ corrupt, once heals all from live/ with no order, and a second once orders nothing', async () => {
    const state = await mkdtemp(path.join(env.dir, 'all-corrupt-'));
    const names = ['a.all.demo.test', 'b.all.demo.test'];
    const vars = sidecarEnv(env, { DOMAINS: names.join(','), STAGING: 'false', STATE_DIR: state });
    const first = await runSidecar(['once'], vars);
    assert.equal(first.code, 0, explain(first));
    const files = await stateFiles(state);
    const kinds: Corruption[] = ['garbage', 'truncated', 'empty', 'wrong shape'];
    for (const [i, f] of files.entries()) {
      const good = await readFile(path.join(state, f));
      await writeFile(
        path.join(state, f),
        corrupt(kinds[i % kinds.length] ?? 'garbage', good, false),
      );
    }
    const before = await pebbleOrders();
    const r = await runSidecar(['once'], vars);
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(await pebbleOrders(), before, `no order\n${explain(r)}`);
    for (const name of names) {
      const full = await readFile(path.join(state, 'live', name, 'fullchain.pem'), 'utf8');
      assert.ok(
        chainVerifiesTo(full, await env.production.getRootPem()),
        `${name} from production`,
      );
      assert.match(
        r.stdout,
        new RegExp(`^ok {3}${name.replace(/\./g, '\\.')} .*phase=production`, 'm'),
      );
      assert.match(r.stdout, new RegExp(`${name.replace(/\./g, '\\.')}: STORE_CORRUPT certs/`));
    }
    assert.doesNotMatch(r.stdout + r.stderr, /ACME_BAD_RESPONSE|PLATFORM_/, explain(r));
    // Every corrupt record this pass read is kept aside; the staging CA's
    // account is read only when a staging order is placed.
    const staging = accountKeyKey(stag()).split('/').slice(0, 2).join('/');
    const leftCorrupt = (await stateFiles(state)).filter(
      (f) => files.includes(f) && !f.startsWith(staging),
    );
    const rewritten: string[] = [];
    for (const f of leftCorrupt) {
      const aside = (await readdir(path.dirname(path.join(state, f)))).some((n) =>
        n.startsWith(`${path.basename(f)}.corrupt-`),
      );
      if (!aside) rewritten.push(f);
    }
    assert.deepEqual(rewritten, [], 'every corrupt record read was kept aside');
    costs.push(
      `    every file under STATE_DIR but live/ (${files.length} files, 2 certificates): 0`,
    );
    const second = await runSidecar(['once'], vars);
    assert.equal(second.code, 0, explain(second));
    assert.deepEqual(
      await pebbleOrders(),
      before,
      `the second once orders nothing\n${explain(second)}`,
    );
    assert.doesNotMatch(second.stdout, /STORE_CORRUPT/, 'nothing left corrupt to find');
    console.log(`    corrupted: ${files.join(' ')}`);
  });

  it('a corrupt rate-limit ledger counts as spent: no order, the refusal names the local-state problem', async () => {
    const name = 'ledger.heal.demo.test';
    const key = rateLedgerKey(stag());
    await writeFile(file(key), '{"events": [{"at": 1}], "blocks": []}');
    const before = await pebbleOrders();
    const r = await once(name, { RATE_LIMITS: 'letsencrypt' });
    assert.equal(r.code, 1, explain(r));
    assert.deepEqual(await pebbleOrders(), before, 'no order');
    costs.push('    rate-limit ledger (wrong shape): 0, and none until its window passes');
    assert.match(r.stdout, /RATE_BUDGET_EXCEEDED: not ordering: the rate-limit ledger was corrupt/);
    assert.match(r.stdout, /STORE_CORRUPT/);
    assert.equal((await asideOf(key)).length, 1);
  });
});

/** Every file under `dir` (relative, '/'-separated), but live/, archive/, dot names and aside copies. */
async function stateFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.name.startsWith('.') || e.name.includes('.corrupt-')) continue;
    if (!rel && (e.name === 'live' || e.name === 'archive')) continue;
    if (e.isDirectory()) out.push(...(await stateFiles(dir, r)));
    else out.push(r);
  }
  return out.sort();
}

/**
 * Places a staging order for `name` with the account the sidecar registered
 * (its key from the store) and leaves it pending, as a killed sidecar would.
 */
async function placePendingOrder(env: DevEnv, name: string): Promise<void> {
  const { default: acme } = await import('acme-client');
  const https = await import('node:https');
  acme.axios.defaults.httpsAgent = new https.Agent({ ca: env.caPem });
  const key = await readFile(
    path.join(env.certDir, ...accountKeyKey(env.staging.directoryUrl).split('/')),
  );
  const record = JSON.parse(
    await readFile(
      path.join(env.certDir, ...accountRecordKey(env.staging.directoryUrl).split('/')),
      'utf8',
    ),
  ) as { url: string };
  const client = new acme.Client({
    directoryUrl: env.staging.directoryUrl,
    accountKey: key,
    accountUrl: record.url,
  });
  const order = await client.createOrder({ identifiers: [{ type: 'dns', value: name }] });
  assert.equal(order.status, 'pending');
}
