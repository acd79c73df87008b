/**
 * Prints the README settings table generated from src/config/schema.ts.
 * Paste it between `<!-- settings:start -->` and `<!-- settings:end -->` in
 * README.md; test/unit/config.test.ts fails while the two differ.
 *
 *   npx tsx scripts/settings-table.ts
 */
import { renderSettingsTable } from '../src/config/docs.js';

process.stdout.write(`${renderSettingsTable()}\n`);
