import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SidecarError } from '../../src/domain/errors.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { RateBudget } from '../../src/reconcile/budget.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { rateLedgerKey } from '../../src/store/keys.js';

const CA = 'https://acme-v02.api.letsencrypt.org/directory';
const DOMAINS = ['a.example.com'];

describe('rate limits: renewals inside the ARI window', () => {
  let root: string;
  let store: FsCertStore;
  let budget: RateBudget;
  const clock = new FixedClock('2026-06-01T00:00:00Z');

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'ari-budget-'));
    store = new FsCertStore(root);
    budget = new RateBudget(store, clock, 'production');
    // Five duplicate certificates in a week: Let's Encrypt's limit is spent.
    for (let i = 0; i < 5; i++) {
      await budget.beforeOrder('production', CA, DOMAINS);
      await budget.afterOrder('production', CA, DOMAINS, 'issued');
      clock.advance(60_000);
    }
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  const entries = async () =>
    (JSON.parse((await store.load(rateLedgerKey(CA)))!.toString()) as { events: unknown[] }).events
      .length;

  it('refuses an ordinary order once the duplicate-certificate limit is spent', async () => {
    await assert.rejects(
      budget.beforeOrder('production', CA, DOMAINS),
      (e: unknown) => e instanceof SidecarError && e.code === 'RATE_BUDGET_EXCEEDED',
    );
  });

  it('never refuses an ARI renewal, and still counts it', async () => {
    const before = await entries();
    await budget.beforeOrder('production', CA, DOMAINS, { exempt: true });
    await budget.afterOrder('production', CA, DOMAINS, 'issued');
    assert.equal(await entries(), before + 2);
  });
});
