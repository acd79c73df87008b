import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { format } from 'prettier';

import {
  GENERATED_BLOCKS,
  generatedBlock,
  renderErrorCodeTable,
  renderSettingsTable,
} from '../../src/config/docs.js';
import { SETTING_GROUPS, SETTINGS } from '../../src/config/schema.js';
import { ERROR_CODE_MEANINGS } from '../../src/domain/errors.js';

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
    assert.deepEqual(
      cells(blockIn('docs/operations.md', 'error-codes')),
      cells(table),
      `docs/operations.md error-code table is out of date; ${regenerate}`,
    );
  });
});

describe('GENERATED_BLOCKS', () => {
  it('names a file that has the block, for every generated part of docs/', () => {
    for (const b of GENERATED_BLOCKS) blockIn(b.file, b.marker);
  });
});
