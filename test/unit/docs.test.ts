import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';

import { format } from 'prettier';

import {
  generatedBlock,
  renderErrorCodeTable,
  renderSettingsTable,
} from '../../src/config/docs.js';
import { SETTING_GROUPS, SETTINGS } from '../../src/config/schema.js';
import { ERROR_CODE_MEANINGS } from '../../src/domain/errors.js';
import { CODE_SOURCES, GENERATED_BLOCKS, renderCodeTables } from '../../scripts/code-docs.js';

const regenerate = 'run `npm run docs`';

/** The generated block of a docs/ file, failing the test if it is missing. */
function blockIn(file: string, marker: string): string {
  let text: string;
  try {
    text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
  } catch {
    assert.fail(`${file} not found; ${regenerate}`);
  }
  const block = generatedBlock(text, marker);
  assert.ok(
    block !== undefined,
    `${file} has no <!-- ${marker}:start --> ... <!-- ${marker}:end --> block; ${regenerate}`,
  );
  return block;
}

// Column padding is prettier's business; compare the cells.
const cells = (md: string): string[] =>
  md
    .trim()
    .split(/\r?\n/)
    .map((line) => line.trim().replace(/ +/g, ' ').replace(/-{3,}/g, '---'));

const formatted = (md: string): Promise<string> =>
  format(md, { parser: 'markdown', printWidth: 100, proseWrap: 'preserve' });

describe('renderSettingsTable', () => {
  const table = renderSettingsTable();

  it('has a row for every variable, with its aliases', () => {
    for (const s of SETTINGS) {
      const row = table.split('\n').find((line) => line.startsWith(`| \`${s.env}\``));
      assert.ok(row !== undefined, `no row for ${s.env}`);
      for (const alias of s.aliases ?? []) assert.ok(row.includes(`\`${alias}\``), alias);
    }
  });

  it('lists every variable under its group, in the order of the groups', () => {
    const headings = table.split('\n').filter((line) => line.startsWith('### '));
    assert.deepEqual(
      headings,
      SETTING_GROUPS.map((g) => `### ${g}`),
    );
    for (const s of SETTINGS) {
      const section = table.split(/^### /m).find((part) => part.startsWith(`${s.group}\n`));
      assert.ok(section?.includes(`| \`${s.env}\``), `${s.env} is not under ${s.group}`);
    }
  });

  it('says a secret is never logged', () => {
    const row = table.split('\n').find((line) => line.startsWith('| `EAB_HMAC_KEY`'));
    assert.match(row ?? '', /Secret: never logged/);
  });

  it('is already formatted as prettier formats it', async () => {
    assert.equal((await formatted(table)).trim(), table);
  });

  it('matches the settings table in docs/configuration.md', () => {
    assert.deepEqual(
      cells(blockIn('docs/configuration.md', 'settings')),
      cells(table),
      `docs/configuration.md settings table is out of date; ${regenerate}`,
    );
  });
});

describe('renderErrorCodeTable', () => {
  const table = renderErrorCodeTable();

  it('has a row for every error code, with its one-line meaning', () => {
    for (const [code, meaning] of Object.entries(ERROR_CODE_MEANINGS)) {
      const row = table.split('\n').find((line) => line.startsWith(`| \`${code}\` `));
      assert.ok(row !== undefined, `no row for ${code}`);
      assert.ok(row.includes(meaning.replace(/\|/g, '\\|')), code);
      assert.match(meaning, /\.$/, `${code}: a meaning ends in a full stop`);
      assert.ok(!meaning.includes('\n'), `${code}: a meaning is one line`);
    }
  });

  it('is already formatted as prettier formats it', async () => {
    assert.equal((await formatted(table)).trim(), table);
  });

  it('matches the error-code table in docs/operations.md', () => {
    const all = renderCodeTables();
    assert.ok(all.includes(table), 'the SidecarError table is part of the error-code block');
    assert.deepEqual(
      cells(blockIn('docs/operations.md', 'error-codes')),
      cells(all),
      `docs/operations.md error-code table is out of date; ${regenerate}`,
    );
  });
});

describe('CODE_SOURCES', () => {
  for (const src of CODE_SOURCES) {
    it(`${src.title}: every code has a one-line meaning where it is declared`, () => {
      const codes = src.codes();
      assert.ok(codes.length > 0);
      for (const c of codes) {
        assert.ok(c.meaning !== undefined, `${c.code} has no /** meaning */ comment`);
        assert.match(c.meaning, /\.$/, `${c.code}: a meaning ends in a full stop`);
      }
    });
  }

  it('reads the comment before a union member even before its `|`', () => {
    const client = CODE_SOURCES.find((s) => s.title.includes('client'));
    const noDaemon = client?.codes().find((c) => c.code === 'NO_DAEMON');
    assert.match(noDaemon?.meaning ?? '', /daemon is not running/);
  });

  it('is already formatted as prettier formats it', async () => {
    const all = renderCodeTables();
    assert.equal((await formatted(all)).trim(), all);
  });
});

describe('GENERATED_BLOCKS', () => {
  it('names a file that has the block, for every generated part of docs/', () => {
    for (const b of GENERATED_BLOCKS) blockIn(b.file, b.marker);
  });

  // Every block, not only the two tables above: docs/platforms.md's Engine API
  // calls are a socket proxy's allowlist (issue 14 finding 9), so they must be
  // ENGINE_API_CALLS as the code has them.
  for (const b of GENERATED_BLOCKS) {
    it(`${b.file} <!-- ${b.marker} -->: is what \`npm run docs\` renders from the code`, () => {
      assert.deepEqual(
        cells(blockIn(b.file, b.marker)),
        cells(b.render()),
        `${b.file} ${b.marker} block is out of date; ${regenerate}`,
      );
    });
  }
});

describe('README.md', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('stays under 12 KB (the rest belongs in docs/)', () => {
    assert.ok(Buffer.byteLength(readme) < 12 * 1024, `${Buffer.byteLength(readme)} bytes`);
  });

  it('lists settings that exist, with the defaults the schema gives them', () => {
    const section = readme.split(/^## /m).find((s) => s.startsWith('Settings'));
    assert.ok(section !== undefined, 'README.md has no Settings section');
    const rows = section.split('\n').filter((line) => /^\| `[A-Z_]+`/.test(line));
    assert.ok(rows.length >= 10, `${rows.length} rows`);
    const generated = renderSettingsTable().split('\n');
    for (const row of rows) {
      const [variable = '', readmeDefault = ''] = row
        .slice(1)
        .split(' | ')
        .map((c) => c.trim());
      const env = variable.replace(/`/g, '');
      const setting = SETTINGS.find((s) => s.env === env);
      assert.ok(setting !== undefined, `${env} is not a setting`);
      const schemaRow = generated.find((line) => line.startsWith(`| ${variable} `));
      const schemaDefault = schemaRow?.slice(1).split(' | ')[1]?.trim();
      assert.equal(readmeDefault, schemaDefault, `${env}'s default`);
    }
  });

  it('lists every command the CLI has', () => {
    const cli = readFileSync(new URL('../../src/cli.ts', import.meta.url), 'utf8');
    const usage = /usage: acme-sidecar <([a-z|-]+)>/.exec(cli)?.[1];
    assert.ok(usage !== undefined, 'no usage line in src/cli.ts');
    for (const cmd of usage.split('|')) assert.ok(readme.includes(`acme-sidecar ${cmd}`), cmd);
  });
});

describe('links in README.md and docs/', () => {
  const files = [
    'README.md',
    ...readdirSync(new URL('../../docs/', import.meta.url)).map((f) => `docs/${f}`),
  ];
  const text = (file: string): string =>
    readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
  /** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as dashes. */
  const anchors = (file: string): string[] =>
    text(file)
      .split('\n')
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) =>
        l
          .replace(/^#+ /, '')
          .toLowerCase()
          .replace(/[^a-z0-9 _-]/g, '')
          .replace(/ /g, '-'),
      );

  for (const file of files) {
    it(`${file}: every relative link names a file and heading that exist`, () => {
      for (const [, target = ''] of text(file).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue;
        const [path = '', anchor] = target.split('#');
        const resolved =
          path === '' ? file : posix.normalize(posix.join(posix.dirname(file), path));
        assert.ok(existsSync(new URL(`../../${resolved}`, import.meta.url)), `${file}: ${target}`);
        if (anchor !== undefined) {
          assert.ok(anchors(resolved).includes(anchor), `${file}: ${target}: no such heading`);
        }
      }
    });
  }
});
