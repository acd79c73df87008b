// dns-persist-01 (draft-ietf-acme-dns-persist; issue 13 item 8) against
// real servers on 127.0.0.1: Debian's BIND 9 holds the zone, and both
// Pebbles (2.10.3, the first release with dns-persist-01; 2.9.0 offers no
// such challenge) resolve through it (-dnsserver). The operator's part is
// played by one nsupdate, done once with the records check-config prints;
// after that, certificates are ordered from both CAs with no DNS change
// (BIND's SOA serial stays the same) and no token anywhere.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { digTxt, type BindInstance } from '../../devenv/bind.js';
import { startDnsDevEnv, type DnsDevEnv } from '../../devenv/dns-devenv.js';
import type { DevEnv } from '../../devenv/index.js';
import {
  isExecutable,
  persistPebbleBinaries,
  PEBBLE_PERSIST_VERSION,
} from '../../devenv/pebble.js';
import { freePort } from '../../devenv/proc.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import {
  collect,
  registerSecret,
  runSidecar,
  sidecarEnv,
  startSidecar,
  type RunResult,
} from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-6000)}`;
}

/** The names whose `_validation-persist` TXT the BIND key may set (the operator's one-time edit). */
const PERSIST_NAMES = [
  'persist.test',
  'wild.test',
  'carry.test',
  'wrongacct.test',
  'nopolicy.test',
];

/** `<phase> <name>` -> value, from check-config's `set once: <name>. TXT "<value>"` lines. */
function printedRecords(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  const re =
    /dns-persist-01 record \((staging|production) CA\) for [^:]+: set once: (\S+)\. TXT "([^"]+)"/g;
  for (const m of stdout.matchAll(re)) out.set(`${m[1]} ${m[2]}`, m[3] ?? '');
  return out;
}

describe(`e2e: dns-persist-01 (BIND 9, Pebble ${PEBBLE_PERSIST_VERSION})`, function () {
  this.timeout(300_000);
  let lab: DnsDevEnv | undefined;
  let bind: BindInstance;
  let env: DevEnv;
  /** Our account URLs, as check-config printed them. */
  const account: Record<'staging' | 'production', string> = { staging: '', production: '' };

  before(async () => {
    const binaries = persistPebbleBinaries();
    if (!isExecutable(binaries.pebble)) {
      throw new Error(
        `Pebble ${PEBBLE_PERSIST_VERSION} is not installed (no ${binaries.pebble}): run PEBBLE_VERSION=${PEBBLE_PERSIST_VERSION} devenv/install-pebble.sh`,
      );
    }
    lab = await startDnsDevEnv({
      tmpPrefix: 'dns-persist-',
      bind: { acmeNames: [], persistNames: PERSIST_NAMES },
      // Every order validates (no authorization reuse): each one is a real
      // dns-persist-01 check against BIND.
      devEnv: { pebble: { binaries, authzReusePercent: 0 } },
    });
    ({ bind, env } = lab);
    registerSecret(bind.secret);
  });
  after(() => lab?.stop());

  function persistEnv(extra: Record<string, string> = {}): Record<string, string> {
    // DNS_RESOLVERS: check-config looks the records up in BIND.
    return sidecarEnv(env, {
      ACME_CHALLENGE: 'dns-persist-01',
      ...lab?.resolverEnv(),
      ...extra,
    });
  }

  function soaSerial(): number {
    const out = execFileSync(
      '/usr/bin/dig',
      [
        '+short',
        '+time=2',
        '+tries=2',
        '-p',
        String(bind.port),
        '@127.0.0.1',
        `${bind.zone}.`,
        'SOA',
      ],
      { encoding: 'utf8' },
    );
    const serial = Number(out.trim().split(/\s+/)[2]);
    assert.ok(Number.isInteger(serial), `no SOA serial in ${JSON.stringify(out)}`);
    return serial;
  }

  /** The operator's one-time change: TXT records added with nsupdate. */
  function setRecords(records: readonly [string, string][]): void {
    const lines = records.map(([name, value]) => `update add ${name}. 300 TXT "${value}"`);
    execFileSync('/usr/bin/nsupdate', ['-y', `hmac-sha256:${bind.keyName}:${bind.secret}`], {
      input: `server 127.0.0.1 ${bind.port}\n${lines.join('\n')}\nsend\n`,
    });
  }

  async function leaf(name: string): Promise<X509Certificate> {
    return new X509Certificate(await readFile(path.join(env.certDir, 'live', name, 'cert.pem')));
  }

  async function assertIssuedBy(name: string, phase: 'staging' | 'production'): Promise<void> {
    const fullchain = await readFile(path.join(env.certDir, 'live', name, 'fullchain.pem'), 'utf8');
    const root = await (phase === 'staging' ? env.staging : env.production).getRootPem();
    assert.ok(chainVerifiesTo(fullchain, root), `${name} is not from the ${phase} Pebble`);
  }

  it('check-config prints the exact record per name and CA: issuer domain name, our accounturi, policy=wildcard for a wildcard', async () => {
    const r = await runSidecar(
      ['check-config'],
      persistEnv({
        STAGING: 'false',
        DOMAINS: 'persist.test,wild=*.wild.test+wild.test,carry.test',
      }),
    );
    assert.equal(r.code, 0, explain(r));
    const printed = printedRecords(r.stdout);
    assert.equal(printed.size, 6, explain(r));
    for (const phase of ['staging', 'production'] as const) {
      const port = phase === 'staging' ? env.ports.stagingAcme : env.ports.productionAcme;
      const plain = printed.get(`${phase} _validation-persist.persist.test`) ?? '';
      const m = /^pebble\.letsencrypt\.org; accounturi=(\S+)$/.exec(plain);
      assert.ok(m?.[1], `${phase} record ${JSON.stringify(plain)}\n${explain(r)}`);
      // Pebble's account URL: https://127.0.0.1:<its ACME port>/my-account/<n>
      assert.match(m[1], new RegExp(`^https://127\\.0\\.0\\.1:${port}/my-account/[0-9a-f]+$`));
      account[phase] = m[1];
      assert.equal(
        printed.get(`${phase} _validation-persist.wild.test`),
        `pebble.letsencrypt.org; accounturi=${m[1]}; policy=wildcard`,
      );
      assert.equal(printed.get(`${phase} _validation-persist.carry.test`), plain);
    }
    assert.notEqual(account.staging, account.production);
    // Not set yet: each line says so (a warning, not a failure).
    assert.match(
      r.stdout,
      /WARN dns-persist-01 record \(staging CA\) for persist\.test: set once: .* \(not in DNS yet: 127\.0\.0\.1:\d+: no TXT record there\)/,
      explain(r),
    );
  });

  it('issues plain and wildcard certificates from staging, then production, with the records set once and no DNS change per order', async () => {
    assert.ok(account.staging && account.production, 'the check-config test runs first');
    // The operator's one change: a record per name and CA account (two TXT
    // values at one name, one per CA; the CA picks its own).
    const records: [string, string][] = [];
    for (const phase of ['staging', 'production'] as const) {
      records.push(
        [
          '_validation-persist.persist.test',
          `pebble.letsencrypt.org; accounturi=${account[phase]}`,
        ],
        [
          '_validation-persist.wild.test',
          `pebble.letsencrypt.org; accounturi=${account[phase]}; policy=wildcard`,
        ],
        ['_validation-persist.carry.test', `pebble.letsencrypt.org; accounturi=${account[phase]}`],
      );
    }
    records.push(
      // A record for another account, and a wildcard's record without policy=wildcard.
      [
        '_validation-persist.wrongacct.test',
        `pebble.letsencrypt.org; accounturi=https://127.0.0.1:1/my-account/999`,
      ],
      [
        '_validation-persist.nopolicy.test',
        `pebble.letsencrypt.org; accounturi=${account.staging}`,
      ],
    );
    setRecords(records);
    assert.equal(digTxt(bind, '_validation-persist.persist.test').length, 2);
    const serial = soaSerial();
    const DOMAINS = 'persist.test,wild=*.wild.test+wild.test';

    // check-config now finds each record, for each CA.
    const check = await runSidecar(['check-config'], persistEnv({ DOMAINS, STAGING: 'false' }));
    assert.equal(check.code, 0, explain(check));
    assert.equal((check.stdout.match(/\(found in DNS\)/g) ?? []).length, 4, explain(check));
    assert.ok(!/not in DNS yet/.test(check.stdout), explain(check));

    const started = performance.now();
    const staging = await runSidecar(['once'], persistEnv({ DOMAINS }));
    const stagingMs = performance.now() - started;
    assert.equal(staging.code, 0, explain(staging));
    await assertIssuedBy('persist.test', 'staging');
    await assertIssuedBy('wild', 'staging');
    assert.match((await leaf('wild')).subjectAltName ?? '', /DNS:\*\.wild\.test/);
    assert.match((await leaf('wild')).subjectAltName ?? '', /DNS:wild\.test(,|$)/);

    const production = await runSidecar(['once'], persistEnv({ DOMAINS, STAGING: 'false' }));
    assert.equal(production.code, 0, explain(production));
    await assertIssuedBy('persist.test', 'production');
    await assertIssuedBy('wild', 'production');

    // Four orders, three validated names each time: no DNS update at all,
    // no DNS-01 value, no HTTP-01 token.
    assert.equal(soaSerial(), serial, 'the zone changed during the orders');
    for (const r of [staging, production]) {
      // persist.test, wild.test and *.wild.test: three authorizations, each validated
      // by the CA against the standing record (authorization reuse is off).
      const valid = r.logs.filter((l) => l.message === 'dns-persist-01 authorization valid');
      assert.deepEqual(
        valid.map((l) => l.domain).sort(),
        ['*.wild.test', 'persist.test', 'wild.test'],
        explain(r),
      );
      assert.equal(r.logs.filter((l) => l.message === 'DNS-01 TXT value added').length, 0);
      assert.equal(r.logs.filter((l) => l.message === 'certificate issued').length, 2, explain(r));
    }
    assert.deepEqual(await readdir(path.join(env.webroot, '.well-known', 'acme-challenge')), []);
    // Pebble validated dns-persist-01 (its log names the challenge's record name), not HTTP-01.
    const pebbleLog = await readFile(env.staging.logPath, 'utf8');
    assert.ok(!/Attempting to validate w\/ HTTP/.test(pebbleLog), 'Pebble validated over HTTP');
    console.log(
      `      [figures] dns-persist-01 (BIND, Pebble ${PEBBLE_PERSIST_VERSION}): staging run with 2 certificates ${Math.round(stagingMs)} ms; SOA serial ${serial} before and after 4 orders`,
    );
  });

  it('fails only the certificates whose record is missing or wrong, naming the record to set, and issues the others', async () => {
    const serial = soaSerial();
    const r = await runSidecar(
      ['once'],
      persistEnv({
        DOMAINS: 'carry.test,missing.test,wrongacct.test,nopolicy=*.nopolicy.test',
      }),
    );
    assert.notEqual(r.code, 0, explain(r));
    await assertIssuedBy('carry.test', 'staging');
    const text = r.stdout + r.stderr;
    const failures = r.logs.filter((l) => JSON.stringify(l).includes('DNS_PERSIST_RECORD_MISSING'));
    assert.ok(failures.length >= 3, explain(r));
    // The exact record, as check-config prints it, in the certificate's error.
    assert.ok(
      text.includes(
        `_validation-persist.missing.test. TXT \\"pebble.letsencrypt.org; accounturi=${account.staging}\\"`,
      ) ||
        text.includes(
          `_validation-persist.missing.test. TXT "pebble.letsencrypt.org; accounturi=${account.staging}"`,
        ),
      explain(r),
    );
    assert.ok(
      text.includes(
        `_validation-persist.nopolicy.test. TXT \\"pebble.letsencrypt.org; accounturi=${account.staging}; policy=wildcard\\"`,
      ),
      explain(r),
    );
    const missing = failures.find((l) => JSON.stringify(l).includes('missing.test'));
    console.log(
      `      [figures] missing-record error: ${JSON.stringify(missing?.error ?? missing?.message)}`,
    );
    // The CA's own reason rides along.
    assert.match(text, /accounturi mismatch/, explain(r));
    assert.match(text, /policy mismatch/, explain(r));
    assert.equal(soaSerial(), serial);
  });

  it('shows the records on /status and the status page while running', async () => {
    const port = await freePort();
    const child = startSidecar(
      ['run'],
      persistEnv({
        DOMAINS: 'persist.test,wild=*.wild.test+wild.test',
        STATUS_ADDRESS: `127.0.0.1:${port}`,
      }),
    );
    const done = collect(child, 120_000);
    try {
      const status = await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/status`);
          const body = (await res.json()) as {
            dnsPersist?: { phase: string; name: string; value: string; domains: string[] }[];
          };
          return body.dnsPersist?.length ? body : undefined;
        },
        { what: '/status to list dns-persist-01 records', timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.deepEqual(status.dnsPersist, [
        {
          name: '_validation-persist.persist.test',
          value: `pebble.letsencrypt.org; accounturi=${account.staging}`,
          phase: 'staging',
          domains: ['persist.test'],
        },
        {
          name: '_validation-persist.wild.test',
          value: `pebble.letsencrypt.org; accounturi=${account.staging}; policy=wildcard`,
          phase: 'staging',
          domains: ['*.wild.test', 'wild.test'],
        },
      ]);
      const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
      assert.match(page, /data-persist-record="_validation-persist\.wild\.test"/);
      assert.ok(
        page.includes(
          `&quot;pebble.letsencrypt.org; accounturi=${account.staging}; policy=wildcard&quot;`,
        ),
        page,
      );
    } finally {
      child.kill('SIGTERM');
      await done.catch(() => undefined);
    }
  });
});
