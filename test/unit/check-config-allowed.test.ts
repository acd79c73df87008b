// check-config on ALLOWED_DOMAINS (src/app/check-config.ts): empty on a
// platform where labels ask for hostnames is warned about, never a failure.
import assert from 'node:assert/strict';
import { checkConfig, type CheckLine } from '../../src/app/check-config.js';

function run(platform: string, allowedDomains?: string[]): Promise<CheckLine[]> {
  return checkConfig({
    directories: [],
    probeDirectory: async () => ({ ok: true, detail: 'answers' }),
    platform: { name: platform, discover: async () => ({ specs: [], problems: [] }) },
    ...(allowedDomains && { allowedDomains }),
    responder: {
      present: async () => undefined,
      verify: async () => undefined,
      cleanup: async () => undefined,
    },
  });
}

const warning = (lines: CheckLine[]) => lines.find((l) => l.what === 'ALLOWED_DOMAINS');

describe('check-config: ALLOWED_DOMAINS', () => {
  for (const platform of ['docker', 'rancher']) {
    it(`warns when it is empty with PLATFORM=${platform}, without failing`, async () => {
      const lines = await run(platform, []);
      const w = warning(lines);
      assert.ok(w, 'a line about ALLOWED_DOMAINS');
      assert.deepEqual([w.ok, w.warn], [true, true]);
      assert.match(w.detail, new RegExp(`PLATFORM=${platform}.*any hostname`));
    });
  }

  it('says nothing when it is set', async () => {
    assert.equal(warning(await run('docker', ['example.com'])), undefined);
  });

  it('says nothing with PLATFORM=static, where only the operator writes DOMAINS', async () => {
    assert.equal(warning(await run('static')), undefined);
  });
});
