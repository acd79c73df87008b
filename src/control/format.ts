import {
  EXPIRING_SOON_SECONDS,
  type StatusCertificate,
  type StatusSnapshot,
} from '../domain/status.js';
import { secondsUntil, span } from '../util/durations.js';
import type { RenewResult } from './protocol.js';

/**
 * Terminal output of `acme-sidecar status` and `renew`. Pure: the clock is
 * passed in, colour is the caller's decision (`process.stdout.isTTY`).
 *
 * Every string that came from outside (certificate names, CA and platform
 * error messages, discovered label values) goes through {@link termSafe}:
 * a terminal is an injection surface too (ANSI escapes can move the
 * cursor, rewrite earlier lines, set the window title; bidi controls
 * reorder what is shown).
 */

/** C0/C1 controls, DEL, zero-width and bidi formatting characters, line/paragraph separators. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** Shows unsafe characters as visible escapes (`\x1b`, `\u{202e}`), so nothing reaches the terminal raw. */
export function termSafe(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const n = c.codePointAt(0) ?? 0;
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}

/** LAST ERROR is cut to this many characters; `/status` (JSON) and the status page have the rest. */
export const MAX_ERROR_CELL = 60;

const SGR = { red: '31', green: '32', yellow: '33', bold: '1', dim: '2' } as const;
type Style = keyof typeof SGR;

interface Cell {
  readonly text: string;
  readonly style?: Style;
}

/** Columns padded to the widest cell, two spaces apart; no trailing blanks. */
function table(header: readonly string[], rows: readonly (readonly Cell[])[], color: boolean) {
  const width = (s: string) => [...s].length;
  const all: (readonly Cell[])[] = [
    header.map((text) => ({ text, style: 'bold' as const })),
    ...rows,
  ];
  const widths = header.map((_, i) => Math.max(...all.map((r) => width(r[i]?.text ?? ''))));
  return all.map((r) =>
    r
      .map((cell, i) => {
        const last = i === r.length - 1;
        const padded = last
          ? cell.text
          : cell.text + ' '.repeat((widths[i] ?? 0) - width(cell.text));
        if (!color || !cell.style) return padded;
        // Colour the text only, so padding stays plain and widths stay true.
        return `\x1b[${SGR[cell.style]}m${cell.text}\x1b[0m${padded.slice(cell.text.length)}`;
      })
      .join('  '),
  );
}

function day(iso: string): string {
  return iso.slice(0, 10);
}

function minute(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function relative(seconds: number): string {
  return seconds >= 0 ? `in ${span(seconds)}` : `${span(-seconds)} ago`;
}

function truncate(s: string, max: number): string {
  const chars = [...s];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : s;
}

function expiresCell(c: StatusCertificate, now: Date): Cell {
  const left = secondsUntil(c.notAfter, now);
  if (c.notAfter === null || left === null) return { text: '-', style: 'dim' };
  if (left <= 0) return { text: `${day(c.notAfter)} (expired ${span(-left)} ago)`, style: 'red' };
  if (left < EXPIRING_SOON_SECONDS) {
    return { text: `${day(c.notAfter)} (in ${span(left)}, expiring soon)`, style: 'yellow' };
  }
  return { text: `${day(c.notAfter)} (in ${span(left)})` };
}

function renewsCell(c: StatusCertificate, now: Date): Cell {
  const retryIn = secondsUntil(c.nextRetry, now);
  if (retryIn !== null && retryIn > 0)
    return { text: `retry ${relative(retryIn)}`, style: 'yellow' };
  const renewIn = secondsUntil(c.renewAt, now);
  if (c.renewAt === null || renewIn === null) return { text: '-', style: 'dim' };
  // An ARI time says so; the lifetime rule is the unmarked default.
  const ari = c.renewSource === 'ari' ? ' ARI' : '';
  if (renewIn <= 0) return { text: `${day(c.renewAt)} (overdue)${ari}`, style: 'yellow' };
  return { text: `${day(c.renewAt)} (${relative(renewIn)})${ari}` };
}

function errorCell(e: StatusCertificate['lastError']): Cell {
  if (!e) return { text: '-', style: 'dim' };
  return { text: truncate(termSafe(`${e.code}: ${e.message}`), MAX_ERROR_CELL), style: 'red' };
}

/** `acme-sidecar status`: one line of context, the table, then what discovery skipped. */
export function formatStatusTable(s: StatusSnapshot, now: Date, color = false): string {
  const lines: string[] = [];
  const pass = s.lastPass
    ? `last pass ${minute(s.lastPass.finishedAt)} (${relative(
        secondsUntil(s.lastPass.finishedAt, now) ?? 0,
      )}): ${s.lastPass.ok ? 'ok' : 'with problems'}`
    : 'no pass has finished yet';
  lines.push(termSafe(`target ${s.target}, platform ${s.platform}, ${pass}`));
  if (s.lastPass?.discoveryError) {
    lines.push(
      termSafe(`discovery failed, last known certificates kept: ${s.lastPass.discoveryError}`),
    );
  }
  lines.push('');
  if (s.certificates.length === 0) {
    lines.push('no certificates (set DOMAINS, or label services on the platform)');
  } else {
    const rows = s.certificates.map((c): Cell[] => [
      { text: termSafe(c.name) },
      { text: termSafe(c.phase) },
      c.ready ? { text: 'yes', style: 'green' } : { text: 'no', style: 'red' },
      expiresCell(c, now),
      renewsCell(c, now),
      errorCell(c.lastError),
    ]);
    lines.push(
      ...table(['NAME', 'PHASE', 'READY', 'EXPIRES', 'RENEWS', 'LAST ERROR'], rows, color),
    );
  }
  if (s.problems.length > 0) {
    lines.push('', `skipped (${s.problems.length}):`);
    for (const p of s.problems) {
      lines.push(
        termSafe(`  ${JSON.stringify(p.value)} from ${p.source}: ${p.code}: ${p.message}`),
      );
    }
  }
  return lines.join('\n');
}

/** `acme-sidecar renew`: one aligned line per certificate. */
export function formatRenewResults(results: readonly RenewResult[], color = false): string {
  if (results.length === 0) return 'no certificates to renew';
  const rows = results.map((r): Cell[] => [
    r.ok ? { text: 'ok', style: 'green' } : { text: 'FAIL', style: 'red' },
    { text: termSafe(r.name) },
    { text: termSafe(r.phase) },
    r.error
      ? { text: termSafe(`${r.error.code}: ${r.error.message}`), style: 'red' }
      : { text: r.serial ? `serial ${termSafe(r.serial)}` : '-' },
  ]);
  return table(['RESULT', 'NAME', 'PHASE', 'DETAIL'], rows, color).join('\n');
}

/**
 * Exit codes, like `once`: 0 only when everything asked about is fine.
 * `status`: at least one certificate and every one ready. `renew`: at
 * least one result and every one ok.
 */
export function commandExitCode(command: 'status', s: StatusSnapshot): 0 | 1;
export function commandExitCode(command: 'renew', r: readonly RenewResult[]): 0 | 1;
export function commandExitCode(
  command: 'status' | 'renew',
  x: StatusSnapshot | readonly RenewResult[],
): 0 | 1 {
  if (command === 'status') {
    const c = (x as StatusSnapshot).certificates;
    return c.length > 0 && c.every((v) => v.ready) ? 0 : 1;
  }
  const r = x as readonly RenewResult[];
  return r.length > 0 && r.every((v) => v.ok) ? 0 : 1;
}
