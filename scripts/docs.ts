/**
 * Writes the generated parts of docs/ from the code: the settings tables in
 * docs/configuration.md (from src/config/schema.ts) and the error-code table
 * in docs/operations.md (from src/domain/errors.ts and the comments on the
 * other code types, scripts/code-docs.ts), each between its
 * `<!-- name:start -->` and `<!-- name:end -->` markers.
 * test/unit/docs.test.ts fails while a file and the code differ.
 *
 *   npm run docs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { replaceGeneratedBlock } from '../src/config/docs.js';
import { GENERATED_BLOCKS } from './code-docs.js';

for (const block of GENERATED_BLOCKS) {
  const path = new URL(`../${block.file}`, import.meta.url);
  const before = readFileSync(path, 'utf8');
  const after = replaceGeneratedBlock(before, block.marker, block.render());
  if (after !== before) writeFileSync(path, after);
  process.stdout.write(`${block.file}: ${after === before ? 'up to date' : 'updated'}\n`);
}
