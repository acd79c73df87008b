import { SETTINGS, type Setting } from './schema.js';

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
 * The README settings table (the part between `<!-- settings:start -->` and
 * `<!-- settings:end -->`), generated from SETTINGS. Columns are padded the
 * way prettier pads them, so formatting the README leaves the table alone.
 */
export function renderSettingsTable(): string {
  const header = ['Variable', 'Default', 'Description'];
  const body = SETTINGS.map((s) => [
    cell(variableCell(s)),
    cell(defaultCell(s)),
    cell(descriptionCell(s)),
  ]);
  // The cells are ASCII, so length is display width (prettier measures width).
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]?.length ?? 0)));
  const row = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [row(header), row(widths.map((w) => '-'.repeat(w))), ...body.map(row)].join('\n');
}
