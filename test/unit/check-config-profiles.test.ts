// check-config's profile lines (src/app/check-config.ts): ACME_PROFILE and
// the labels' profiles against each CA's meta.profiles, in the words
// `acme-sidecar once` fails with.
import assert from 'node:assert/strict';
import { checkConfig, type CheckLine } from '../../src/app/check-config.js';
import type { CertSpec } from '../../src/domain/types.js';

const STAGING = 'https://staging.test/dir';
const PROD = 'https://prod.test/dir';

function run(opts: {
  profile?: string;
  specs?: CertSpec[];
  offered: Record<string, Record<string, string> | undefined>;
}): Promise<CheckLine[]> {
  return checkConfig({
    directories: [
      { phase: 'staging', url: STAGING },
      { phase: 'production', url: PROD },
    ],
    probeDirectory: async (url) => {
      const profiles = opts.offered[url];
      return { ok: true, detail: `${url} answers`, ...(profiles && { profiles }) };
    },
    ...(opts.profile !== undefined && { profile: opts.profile }),
    platform: {
      name: 'static',
      discover: async () => ({ specs: opts.specs ?? [], problems: [] }),
    },
    responder: {
      present: async () => undefined,
      verify: async () => undefined,
      cleanup: async () => undefined,
    },
  });
}

const profileLines = (lines: CheckLine[]) =>
  lines.filter((l) => l.what.includes(' CA profile ')).map((l) => [l.ok, l.what, l.detail]);

describe('check-config: profiles', () => {
  it('says each CA offers ACME_PROFILE when it does', async () => {
    const lines = await run({
      profile: 'short',
      offered: { [STAGING]: { short: '' }, [PROD]: { short: '', default: '' } },
    });
    assert.deepEqual(profileLines(lines), [
      [true, 'staging CA profile short', 'ACME_PROFILE: the CA offers short'],
      [true, 'production CA profile short', 'ACME_PROFILE: the CA offers short'],
    ]);
  });

  it('fails for the CA that lacks it, naming ACME_PROFILE, the value and the profiles on offer', async () => {
    const lines = await run({
      profile: 'short',
      offered: { [STAGING]: { short: '' }, [PROD]: { classic: '90 days', tlsserver: '45 days' } },
    });
    const bad = lines.filter((l) => !l.ok && l.what.includes(' CA profile '));
    assert.equal(bad.length, 1, JSON.stringify(lines));
    assert.equal(bad[0]?.what, 'production CA profile short');
    assert.match(
      bad[0]?.detail ?? '',
      /^ACME_PROFILE="short" is not a profile the CA at https:\/\/prod\.test\/dir offers; it offers: classic \(90 days\), tlsserver \(45 days\)$/,
    );
  });

  it('fails when a profile is set against a CA that lists none', async () => {
    const lines = await run({
      profile: 'short',
      offered: { [STAGING]: undefined, [PROD]: undefined },
    });
    const bad = lines.filter((l) => !l.ok && l.what.includes(' CA profile '));
    assert.equal(bad.length, 2);
    for (const l of bad)
      assert.match(l.detail, /ACME_PROFILE="short", but the CA at .* offers no profiles/);
  });

  it('checks a label profile under the label that set it', async () => {
    const from = 'rancher:service/web(1s1):io.acme-sidecar.profile';
    const lines = await run({
      specs: [{ name: 'a', domains: ['a.test'], source: 's', profile: 'nope', profileFrom: from }],
      offered: { [STAGING]: { short: '' }, [PROD]: { short: '' } },
    });
    const bad = lines.filter((l) => !l.ok && l.what.includes(' CA profile '));
    assert.equal(bad.length, 2);
    assert.ok(bad.every((l) => l.detail.startsWith(`${from}="nope" is not a profile`)));
  });

  it('adds no profile line when no profile is asked for', async () => {
    const lines = await run({ offered: { [STAGING]: undefined, [PROD]: undefined } });
    assert.deepEqual(profileLines(lines), []);
  });
});
