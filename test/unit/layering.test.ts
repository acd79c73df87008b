import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Imports point downward: the domain and the decisions know no adapter, the
 * control socket does not borrow from the HTTP server, and configuration
 * does not reach into the adapters it configures. Read from the import
 * statements of src/, so a new file is checked without being listed.
 */

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Folders that talk to an outside system, or sit above the domain and decisions. */
const ADAPTERS = [
  'acme',
  'app',
  'challenge',
  'cluster',
  'control',
  'deploy',
  'hooks',
  'http',
  'metrics',
  'platform',
  'reconcile',
  'store',
];

interface Rule {
  readonly name: string;
  readonly from: string;
  readonly forbidden: readonly string[];
}

const RULES: readonly Rule[] = [
  { name: 'domain/ imports no adapter', from: 'domain', forbidden: [...ADAPTERS, 'config'] },
  { name: 'lifecycle/ imports no adapter', from: 'lifecycle', forbidden: [...ADAPTERS, 'config'] },
  { name: 'control/ does not import http/', from: 'control', forbidden: ['http'] },
  { name: 'config/ imports no adapter', from: 'config', forbidden: ADAPTERS },
];

/**
 * Imports the rules above still allow, as `from -> to` (paths under src/).
 * Empty: every rule holds. A listed exception that no longer occurs fails
 * the last test, so the list can only shrink.
 */
const KNOWN_EXCEPTIONS: readonly string[] = [];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative module a file imports or re-exports (static and dynamic), as a path under src/. */
export function importsOf(file: string, text: string): string[] {
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm),
    ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1] as string);
  return specifiers
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, '.ts'))
    .map((p) => p.split(sep).join('/'));
}

/** `from -> to` for every import a rule forbids. */
function violations(): { rule: string; edge: string }[] {
  const found: { rule: string; edge: string }[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file).split(sep).join('/');
    const top = from.split('/')[0];
    for (const to of importsOf(file, readFileSync(file, 'utf8'))) {
      for (const rule of RULES) {
        if (rule.from === top && rule.forbidden.includes(to.split('/')[0] ?? '')) {
          found.push({ rule: rule.name, edge: `${from} -> ${to}` });
        }
      }
    }
  }
  return found;
}

describe('layering: imports point downward', () => {
  const all = violations();

  for (const rule of RULES) {
    it(rule.name, () => {
      const edges = all
        .filter((v) => v.rule === rule.name && !KNOWN_EXCEPTIONS.includes(v.edge))
        .map((v) => v.edge);
      assert.deepEqual(edges, []);
    });
  }

  it('lists no known exception that no longer occurs', () => {
    const edges = new Set(all.map((v) => v.edge));
    assert.deepEqual(
      KNOWN_EXCEPTIONS.filter((e) => !edges.has(e)),
      [],
    );
  });

  it('reads import and export statements of every kind', () => {
    const file = join(SRC, 'lifecycle', 'x.ts');
    const text = [
      "import type { A } from '../acme/a.js';",
      "import {\n  B,\n  type C,\n} from '../store/b.js';",
      "export { D } from './d.js';",
      "export type { E } from '../http/e.js';",
      "import '../hooks/side-effect.js';",
      "const f = await import('../deploy/f.js');",
      "import x from 'node:fs';",
      "// a comment that says from '../cluster/not-an-import.js'",
    ].join('\n');
    assert.deepEqual(importsOf(file, text), [
      'acme/a.ts',
      'store/b.ts',
      'lifecycle/d.ts',
      'http/e.ts',
      'hooks/side-effect.ts',
      'deploy/f.ts',
    ]);
  });
});
