// Runs TypeScript through tsx and prints a closing "N passed, N failed" line
// (test/support/summary-reporter.cjs) that CI reads.
//
// No `spec` here on purpose: mocha adds a config file's `spec` to the files given
// on the command line, so `npx mocha test/e2e/one.test.ts` would run every test.
// The spec lists are in package.json (`test:unit`, `test:e2e`); `npm test` runs
// both as separate processes (scripts/test.ts).
module.exports = {
  'node-option': ['import=tsx'],
  reporter: './test/support/summary-reporter.cjs',
  timeout: 60000,
  exit: true,
};
