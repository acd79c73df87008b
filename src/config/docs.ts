/**
 * The Markdown that docs/ generates from the code (`npm run docs`, which is
 * scripts/docs.ts; the blocks are listed in scripts/code-docs.ts): the
 * settings tables of docs/configuration.md and the SidecarError code table of
 * docs/operations.md. test/unit/docs.test.ts fails while a file and its
 * generator differ.
 */
import { ERROR_CODE_MEANINGS } from '../domain/errors.js';
import { SETTING_GROUPS, SETTINGS, type Setting } from './schema.js';

function cell(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
}

function variableCell(s: Setting): string {
  const aliases = s.aliases ?? [];
  const names = `\`${s.env}\``;
  return aliases.length === 0
    ? names
    : `${names} (alias ${aliases.map((a) => `\`${a}\``).join(', ')})`;
}

function defaultCell(s: Setting): string {
  if (s.default === undefined) return 'unset';
  if (s.default === '') return 'empty';
  // A computed default is described in words, not quoted as a value.
  return s.defaultValue === undefined ? `\`${s.default}\`` : s.default;
}

function descriptionCell(s: Setting): string {
  return s.secret === true ? `${s.description} Secret: never logged.` : s.description;
}

/**
 * A Markdown table with its columns padded the way prettier pads them, so
 * formatting the docs leaves it alone. The cells are ASCII, so length is
 * display width (prettier measures width).
 */
export function markdownTable(
  header: readonly string[],
  body: readonly (readonly string[])[],
): string {
  const rows = body.map((r) => r.map(cell));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const row = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [row(header), row(widths.map((w) => '-'.repeat(w))), ...rows.map(row)].join('\n');
}

/**
 * The settings tables (the part of docs/configuration.md between
 * `<!-- settings:start -->` and `<!-- settings:end -->`): one `###` section
 * per group, in SETTING_GROUPS order, generated from SETTINGS.
 */
export function renderSettingsTable(): string {
  return SETTING_GROUPS.map((group) => {
    const rows = SETTINGS.filter((s) => s.group === group).map((s) => [
      variableCell(s),
      defaultCell(s),
      descriptionCell(s),
    ]);
    return `### ${group}\n\n${markdownTable(['Variable', 'Default', 'Description'], rows)}`;
  }).join('\n\n');
}

/**
 * The table of the SidecarError codes, from ERROR_CODE_MEANINGS in
 * declaration order: the first part of docs/operations.md's error-code block
 * (scripts/code-docs.ts adds the other codes).
 */
export function renderErrorCodeTable(): string {
  const rows = Object.entries(ERROR_CODE_MEANINGS).map(([code, meaning]) => [
    `\`${code}\``,
    meaning,
  ]);
  return markdownTable(['Code', 'Meaning'], rows);
}

/** The text between a block's markers, or undefined if `text` has no such block. */
export function generatedBlock(text: string, marker: string): string | undefined {
  const start = `<!-- ${marker}:start -->`;
  const end = `<!-- ${marker}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  return i < 0 || j < i ? undefined : text.slice(i + start.length, j);
}

/** `text` with the block between a block's markers replaced by `content`; throws without markers. */
export function replaceGeneratedBlock(text: string, marker: string, content: string): string {
  const start = `<!-- ${marker}:start -->`;
  const end = `<!-- ${marker}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`no ${start} ... ${end} block`);
  return `${text.slice(0, i + start.length)}\n\n${content}\n\n${text.slice(j)}`;
}
