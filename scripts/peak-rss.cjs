// Preload (node --require) for scripts/bench-once-memory.ts: prints the
// process's peak RSS as the kernel counts it (VmHWM) and its CPU time when
// it exits.
'use strict';
const { readFileSync } = require('node:fs');

process.on('exit', () => {
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  const cpu = process.cpuUsage();
  process.stderr.write(
    `peak-rss: ${hwm ? hwm[1] : '?'} kB, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s\n`,
  );
});
