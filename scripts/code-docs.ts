/**
 * Reads the meaning of each code from the comment where the code is
 * declared, for the code tables that `npm run docs` writes into
 * docs/operations.md. Two forms are read: a string-literal union type
 * (`type X = /** meaning *\/ 'a' | ...`, following aliases of the same file
 * it includes) and a `const` object whose keys are the codes.
 */
import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { markdownTable, renderErrorCodeTable, renderSettingsTable } from '../src/config/docs.js';
import { ENGINE_API_CALLS } from '../src/platform/docker/engine-client.js';

export interface DocumentedCode {
  readonly code: string;
  /** The `/** ... *\/` comment before the code, on one line; undefined if it has none. */
  readonly meaning: string | undefined;
}

function parse(file: string): ts.SourceFile {
  const path = new URL(`../${file}`, import.meta.url);
  return ts.createSourceFile(file, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
}

/**
 * The last JSDoc block comment between `from` and the start of `node`, as one
 * line of text. `from` is where the code before it ends, so a union member's
 * comment is found also before the `|` that precedes it.
 */
function jsdoc(source: ts.SourceFile, node: ts.Node, from = node.pos): string | undefined {
  const between = source.text.slice(from, node.getStart(source));
  const block = [...between.matchAll(/\/\*\*([\s\S]*?)\*\//g)].at(-1)?.[1];
  if (block === undefined) return undefined;
  return block
    .split('\n')
    .map((line) => line.replace(/^\s*\*?\s?/, '').trim())
    .filter((line) => line !== '')
    .join(' ');
}

/** The string members of the union type `name` declared in `file`, with their comments. */
export function unionCodes(file: string, name: string): DocumentedCode[] {
  const source = parse(file);
  const aliases = new Map<string, ts.TypeAliasDeclaration>();
  source.forEachChild((n) => {
    if (ts.isTypeAliasDeclaration(n)) aliases.set(n.name.text, n);
  });
  const members = (alias: string): DocumentedCode[] => {
    const decl = aliases.get(alias);
    if (decl === undefined) throw new Error(`${file}: no type ${alias}`);
    const types = ts.isUnionTypeNode(decl.type) ? decl.type.types : [decl.type];
    return types.flatMap((t, i): DocumentedCode[] => {
      if (ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal)) {
        const from = i === 0 ? decl.type.pos : (types[i - 1] as ts.TypeNode).end;
        return [{ code: t.literal.text, meaning: jsdoc(source, t, from) }];
      }
      if (ts.isTypeReferenceNode(t) && ts.isIdentifier(t.typeName)) {
        return members(t.typeName.text);
      }
      throw new Error(`${file}: ${alias} has a member that is not a string or a type of ${file}`);
    });
  };
  return members(name);
}

/** The keys of the object constant `name` declared in `file`, with their comments. */
export function objectCodes(file: string, name: string): DocumentedCode[] {
  const source = parse(file);
  let found: ts.ObjectLiteralExpression | undefined;
  const visit = (n: ts.Node): void => {
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.name.text === name) {
      let init = n.initializer;
      while (init !== undefined && (ts.isAsExpression(init) || ts.isSatisfiesExpression(init))) {
        init = init.expression;
      }
      if (init !== undefined && ts.isObjectLiteralExpression(init)) found = init;
    }
    n.forEachChild(visit);
  };
  visit(source);
  if (found === undefined) throw new Error(`${file}: no object constant ${name}`);
  return found.properties.map((p) => {
    if (p.name === undefined || !(ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) {
      throw new Error(`${file}: ${name} has a key that is not a plain name`);
    }
    return { code: p.name.text, meaning: jsdoc(source, p) };
  });
}

/** Where the codes other than the SidecarError ones are declared, by the section listing them. */
export const CODE_SOURCES = [
  {
    title: 'Skipped hostnames and `DOMAINS` entries',
    intro:
      'A hostname or entry that cannot be used is reported (log, `once`, `/status`) with one of these codes and skipped; the other certificates go ahead.',
    codes: () => unionCodes('src/domain/hostnames.ts', 'DomainListProblemCode'),
  },
  {
    title: 'Control socket: the daemon',
    intro: 'Errors the daemon answers `status` and `renew` with.',
    codes: () => objectCodes('src/control/protocol.ts', 'HANDLER_ERROR_STATUS'),
  },
  {
    title: 'Control socket: the client',
    intro: 'Why `acme-sidecar status` or `renew` could not get an answer.',
    codes: () => unionCodes('src/control/client.ts', 'ControlClientErrorCode'),
  },
] as const;

/**
 * docs/operations.md's error-code block: the SidecarError codes, then each
 * of CODE_SOURCES under its own heading.
 */
export function renderCodeTables(): string {
  const sections = CODE_SOURCES.map((src) => {
    const rows = src.codes().map((c) => [`\`${c.code}\``, c.meaning ?? '']);
    return `### ${src.title}\n\n${src.intro}\n\n${markdownTable(['Code', 'Meaning'], rows)}`;
  });
  return [`### Failures\n\n${renderErrorCodeTable()}`, ...sections].join('\n\n');
}

/** A generated block of docs/: its file, its markers and what goes between them. */
export interface GeneratedBlock {
  /** Path from the repository root. */
  readonly file: string;
  readonly marker: string;
  readonly render: () => string;
}

export const GENERATED_BLOCKS: readonly GeneratedBlock[] = [
  { file: 'docs/configuration.md', marker: 'settings', render: renderSettingsTable },
  { file: 'docs/operations.md', marker: 'error-codes', render: renderCodeTables },
  { file: 'docs/platforms.md', marker: 'docker-api-calls', render: renderEngineApiCalls },
];

/** The Docker Engine API calls the sidecar makes (ENGINE_API_CALLS), for a socket proxy's allowlist. */
export function renderEngineApiCalls(): string {
  return markdownTable(
    ['Method', 'Path', 'What for'],
    ENGINE_API_CALLS.map((c) => [c.method, `\`${c.path}\``, c.why]),
  );
}
