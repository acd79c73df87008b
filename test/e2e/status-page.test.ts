import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHttpServer } from '../../src/http/server.js';
import { buildStatusSnapshot } from '../../src/http/status.js';
import type { CertStatus } from '../../src/domain/status.js';

// The status page as a person sees it: a real headless Chromium (Debian
// package `chromium`) loads it from the real server on loopback. CI installs
// chromium; this test fails, not skips, without it.

const CHROMIUM = '/usr/bin/chromium';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUT_DIR = path.join(REPO, '.test-output');
const SCREENSHOT = path.join(OUT_DIR, 'status-page.png');
const DAY = 24 * 60 * 60 * 1000;
const CHROMIUM_TIMEOUT_MS = 45_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs chromium in its own process group with a fresh profile, and kills the
 * whole group (browser, zygote, renderers) on timeout and again after exit so
 * no helper outlives the test.
 */
async function chromium(args: string[]): Promise<Run> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'status-page-chromium-'));
  const child = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--hide-scrollbars',
      `--user-data-dir=${profile}`,
      ...args,
    ],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const killGroup = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // ESRCH: the group is already gone.
    }
  };
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, CHROMIUM_TIMEOUT_MS);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(
      (resolve, reject) => {
        child.on('error', reject);
        child.on('close', (c, s) => resolve([c, s]));
      },
    );
    return { code, signal, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
    killGroup();
    await rm(profile, { recursive: true, force: true });
  }
}

/** Every `<article ... data-cert=... data-state=...>` in a DOM dump. */
function cards(dom: string): Map<string, { state: string; html: string }> {
  const found = new Map<string, { state: string; html: string }>();
  for (const m of dom.matchAll(/<article\b([^>]*)>([\s\S]*?)<\/article>/g)) {
    const attrs = m[1] ?? '';
    const name = /\bdata-cert="([^"]*)"/.exec(attrs)?.[1];
    const state = /\bdata-state="([^"]*)"/.exec(attrs)?.[1];
    if (name !== undefined && state !== undefined) found.set(name, { state, html: m[2] ?? '' });
  }
  return found;
}

describe('e2e: status page in headless Chromium', function () {
  this.timeout(120_000);
  const now = new Date();
  const at = (ms: number) => new Date(now.getTime() + ms).toISOString();
  const certificates: CertStatus[] = [
    {
      name: 'shop.example.com',
      domains: ['shop.example.com', 'www.shop.example.com'],
      phase: 'production',
      notAfter: at(60 * DAY),
      renewAt: at(30 * DAY),
      reason: 'Valid',
      ready: true,
      attempts: 0,
    },
    {
      name: 'api.example.com',
      domains: ['api.example.com'],
      phase: 'staging',
      notAfter: at(89 * DAY),
      renewAt: at(59 * DAY),
      reason: 'StagingOnly',
      ready: false,
      attempts: 1,
    },
    {
      name: 'legacy.example.com',
      domains: ['legacy.example.com', 'old.example.com'],
      phase: 'self-signed',
      notAfter: at(5 * DAY),
      reason: 'NotIssued',
      ready: false,
      attempts: 4,
      lastError: {
        code: 'ACME_CA_UNREACHABLE',
        message: 'connect ECONNREFUSED 127.0.0.1:14000 <script>alert(1)</script>',
        at: at(-60_000),
      },
      nextRetry: at(4 * 60_000),
    },
    {
      name: 'blog.example.com',
      domains: ['blog.example.com'],
      phase: 'production',
      notAfter: at(3 * DAY),
      renewAt: at(-27 * DAY),
      reason: 'NearingExpiry',
      ready: true,
      attempts: 0,
    },
  ];
  const snapshot = buildStatusSnapshot(
    {
      certificates,
      problems: [
        {
          source: 'label:svc/web-7',
          value: 'bad_host.example.com',
          code: 'HOSTNAME_INVALID',
          message: 'underscore is not allowed in a hostname',
        },
        {
          source: 'env:DOMAINS',
          value: '*.example.com',
          code: 'WILDCARD_UNSUPPORTED',
          message: 'wildcards need DNS-01, which is not configured',
        },
      ],
      target: 'production',
      platform: 'static',
      lastPass: { startedAt: at(-42_300), finishedAt: at(-41_000), ok: true },
    },
    now,
  );
  let server: { port: number; close(): Promise<void> } | undefined;
  let url = '';

  before(async () => {
    try {
      accessSync(CHROMIUM, constants.X_OK);
    } catch {
      throw new Error(
        `${CHROMIUM} is missing. Install the Debian package: apt-get update && apt-get install -y chromium`,
      );
    }
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      status: () => snapshot,
      ready: () => ({ ok: true, reasons: [] }),
      now: () => now,
    });
    url = `http://127.0.0.1:${server.port}/`;
    await mkdir(OUT_DIR, { recursive: true });
  });
  after(async () => {
    await server?.close();
  });

  it('renders every certificate with its state: error, warning, ok', async () => {
    const r = await chromium(['--dump-dom', url]);
    assert.equal(r.timedOut, false, 'chromium finished in time');
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const found = cards(r.stdout);
    assert.deepEqual([...found.keys()].sort(), [
      'api.example.com',
      'blog.example.com',
      'legacy.example.com',
      'shop.example.com',
    ]);
    assert.equal(found.get('legacy.example.com')?.state, 'error');
    assert.equal(found.get('blog.example.com')?.state, 'warning');
    assert.equal(found.get('shop.example.com')?.state, 'ok');
    // Staging while production is the target: not ready, so it needs attention.
    assert.equal(found.get('api.example.com')?.state, 'error');

    const failing = found.get('legacy.example.com')?.html ?? '';
    assert.match(failing, /ACME_CA_UNREACHABLE/);
    assert.match(failing, /next retry/);
    assert.match(found.get('shop.example.com')?.html ?? '', /60 days left/);
    assert.match(found.get('blog.example.com')?.html ?? '', /3 days left/);
    // The browser parsed the hostile message as text, not as an element.
    assert.ok(!/<script/i.test(r.stdout), 'no script element in the DOM');
    assert.ok(failing.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.match(r.stdout, /bad_host\.example\.com/);
  });

  it('takes a screenshot worth looking at', async () => {
    await rm(SCREENSHOT, { force: true });
    const r = await chromium([`--screenshot=${SCREENSHOT}`, '--window-size=1200,900', url]);
    assert.equal(r.timedOut, false, 'chromium finished in time');
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const size = (await stat(SCREENSHOT)).size;
    assert.ok(size > 10_000, `screenshot is ${size} bytes`);
    const png = await readFile(SCREENSHOT);
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    // IHDR: width and height, big-endian, at bytes 16..23.
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [1200, 900]);
  });
});
