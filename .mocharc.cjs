// Runs TypeScript through tsx and prints a closing "N passed, N failed" line
// (test/support/summary-reporter.cjs) that CI reads.
module.exports = {
  'node-option': ['import=tsx'],
  spec: ['test/unit/**/*.test.ts', 'test/e2e/**/*.test.ts'],
  reporter: './test/support/summary-reporter.cjs',
  timeout: 60000,
  exit: true,
};
