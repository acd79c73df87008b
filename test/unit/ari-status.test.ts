import assert from 'node:assert/strict';
import type { CertStatus } from '../../src/domain/status.js';
import { formatStatusTable } from '../../src/control/format.js';
import { renderStatusPage } from '../../src/http/page.js';
import { buildStatusSnapshot } from '../../src/http/status.js';
import { Metrics } from '../../src/metrics/metrics.js';

const DAY = 24 * 60 * 60;
const NOW = new Date('2026-06-01T12:00:00Z');
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000).toISOString();

function cert(over: Partial<CertStatus> & { name: string }): CertStatus {
  return {
    domains: [over.name],
    phase: 'production',
    notAfter: at(60 * DAY),
    renewAt: at(30 * DAY),
    reason: 'Valid',
    ready: true,
    attempts: 0,
    ...over,
  };
}

const snapshot = (certificates: CertStatus[]) =>
  buildStatusSnapshot(
    {
      certificates,
      problems: [],
      target: 'production',
      platform: 'static',
      lastPass: { startedAt: at(-62), finishedAt: at(-60), ok: true },
    },
    NOW,
  );

describe('status: where the renewal time came from', () => {
  const s = snapshot([
    cert({
      name: 'ari.test',
      renewSource: 'ari',
      explanationUrl: 'https://ca.test/incident',
      ariCheckAt: at(3600),
    }),
    cert({ name: 'lifetime.test' }),
    cert({ name: 'none.test', renewAt: undefined }),
  ]);
  const byName = (n: string) => s.certificates.find((c) => c.name === n)!;

  it('shows an ARI time as such, with the CA explanation', () => {
    assert.equal(byName('ari.test').renewSource, 'ari');
    assert.equal(byName('ari.test').explanationUrl, 'https://ca.test/incident');
    assert.ok(!('ariCheckAt' in byName('ari.test')), 'the next check stays internal');
  });

  it('shows a renewal time without a source as the lifetime rule, and no time as null', () => {
    assert.equal(byName('lifetime.test').renewSource, 'lifetime');
    assert.equal(byName('lifetime.test').explanationUrl, null);
    assert.equal(byName('none.test').renewSource, null);
  });

  it('marks an ARI time on the page (with the explanation link) and in `acme-sidecar status`', () => {
    const page = renderStatusPage(s, NOW);
    assert.match(page, /data-renew-source="ari">CA renewal window \(ARI\)/);
    assert.match(page, /href="https:\/\/ca\.test\/incident"/);
    assert.match(page, /data-renew-source="lifetime">lifetime rule/);
    const table = formatStatusTable(s, NOW);
    const line = (n: string) => table.split('\n').find((l) => l.includes(n)) ?? '';
    assert.match(line('ari.test'), / ARI/);
    assert.doesNotMatch(line('lifetime.test'), / ARI/);
  });
});

describe('metrics: the renewal time and its source', () => {
  it('exports renewAt and a 1 for the current source of each certificate', async () => {
    const metrics = new Metrics('static', {
      certificates: () => [
        cert({ name: 'ari.test', renewSource: 'ari' }),
        cert({ name: 'lifetime.test' }),
      ],
      lastPass: () => undefined,
    });
    const text = await metrics.registry.metrics();
    const value = (metric: string, name: string, extra = '') =>
      new RegExp(`^${metric}\\{name="${name}"[^}]*${extra}[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1];
    assert.equal(
      value('certmanager_certificate_renewal_timestamp_seconds', 'ari.test'),
      String(Date.parse(at(30 * DAY)) / 1000),
    );
    assert.equal(
      value('acme_sidecar_certificate_renewal_source', 'ari.test', ',source="ari"'),
      '1',
    );
    assert.equal(
      value('acme_sidecar_certificate_renewal_source', 'ari.test', ',source="lifetime"'),
      '0',
    );
    assert.equal(
      value('acme_sidecar_certificate_renewal_source', 'lifetime.test', ',source="lifetime"'),
      '1',
    );
  });
});

describe('status, page and metrics: the profile beside the renewal time', () => {
  const s = snapshot([
    cert({ name: 'short.test', profile: 'shortlived', renewSource: 'ari' }),
    cert({ name: 'plain.test' }),
  ]);
  const byName = (n: string) => s.certificates.find((c) => c.name === n)!;

  it('shows the profile in /status, and null for the CA default', () => {
    assert.equal(byName('short.test').profile, 'shortlived');
    assert.equal(byName('plain.test').profile, null);
  });

  it('shows the profile on the page, in the renewal column', () => {
    const page = renderStatusPage(s, NOW);
    const card = (n: string) =>
      page.slice(
        page.indexOf(`data-cert="${n}"`),
        page.indexOf('</article>', page.indexOf(`data-cert="${n}"`)),
      );
    assert.match(
      card('short.test'),
      /<div class="renew">[\s\S]*data-profile="shortlived">profile shortlived</,
    );
    assert.match(card('plain.test'), /data-profile="">profile CA default</);
  });

  it('labels the renewal source series with the profile, next to the renewal timestamp', async () => {
    const metrics = new Metrics('static', {
      certificates: () => [
        cert({ name: 'short.test', profile: 'shortlived', renewSource: 'ari' }),
        cert({ name: 'plain.test' }),
      ],
      lastPass: () => undefined,
    });
    const text = await metrics.registry.metrics();
    assert.match(
      text,
      /^acme_sidecar_certificate_renewal_source\{name="short\.test"[^}]*,source="ari",profile="shortlived"\} 1$/m,
    );
    assert.match(
      text,
      /^acme_sidecar_certificate_renewal_source\{name="plain\.test"[^}]*,source="lifetime",profile=""\} 1$/m,
    );
    assert.match(
      text,
      new RegExp(
        `^certmanager_certificate_renewal_timestamp_seconds\\{name="short\\.test"[^}]*\\} ${Date.parse(at(30 * DAY)) / 1000}$`,
        'm',
      ),
    );
  });
});
