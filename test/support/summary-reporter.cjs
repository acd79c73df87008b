// Mocha's spec reporter plus one plain closing line, "N passed, N failed, N skipped",
// which is the summary format CI reads from any runner.
'use strict';
const Mocha = require('mocha');

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats || { passes: 0, failures: 0, pending: 0 };
      // Printed after the spec epilogue.
      process.nextTick(() =>
        console.log(`\n${s.passes} passed, ${s.failures} failed, ${s.pending} skipped`),
      );
    });
  }
}
module.exports = SummaryReporter;
