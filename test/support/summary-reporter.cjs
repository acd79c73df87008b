// Mocha's spec reporter plus one plain closing line, "N passed, N failed, N skipped",
// which is the summary format CI reads from any runner.
//
// Under `npm test` (scripts/test.ts) each mocha process is only part of the run:
// the runner sets TEST_SUMMARY_FILE, this reporter writes its counts there as JSON
// and prints its own line in another wording ("unit tests: 3 ok, 0 not ok, 0 pending"),
// so the runner's summed line stays the only "N passed, N failed, N skipped" line.
'use strict';
const fs = require('node:fs');
const Mocha = require('mocha');

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats || { passes: 0, failures: 0, pending: 0 };
      const file = process.env.TEST_SUMMARY_FILE;
      if (file) {
        fs.writeFileSync(
          file,
          JSON.stringify({ passed: s.passes, failed: s.failures, skipped: s.pending }),
        );
      }
      const part = process.env.TEST_PART || 'tests';
      // Printed after the spec epilogue.
      process.nextTick(() =>
        console.log(
          file
            ? `\n${part}: ${s.passes} ok, ${s.failures} not ok, ${s.pending} pending`
            : `\n${s.passes} passed, ${s.failures} failed, ${s.pending} skipped`,
        ),
      );
    });
  }
}
module.exports = SummaryReporter;
