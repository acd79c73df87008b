// scripts/build.ts writes the bundle in ASCII only (V8 holds a script's
// source at two bytes per character once one character is not Latin-1):
// the escapes must not change what the code does.
import assert from 'node:assert/strict';
import vm from 'node:vm';
import { asciiOnly } from '../../scripts/build.js';

const SOURCE = [
  '// a comment with \u00a7 and \u2014',
  'const s = "caf\u00e9 \u{1f600}";',
  'const t = `\u2014${s}\u2014`;',
  'const r = /[\u00e9\u2014]/.test("x\u2014");',
  'const \u00e9t\u00e9 = 2;',
  '({ s, t, r, n: \u00e9t\u00e9, len: s.length });',
].join('\n');

describe('build: an ASCII-only bundle', () => {
  it('escapes every character above 0x7f', () => {
    const out = asciiOnly(SOURCE);
    assert.ok(!/[\u0080-\uffff]/.test(out), out);
    assert.ok(out.includes('// a comment with \\u00a7 and \\u2014'));
  });

  it('and the escaped code computes the same values: strings, templates, regular expressions, names', () => {
    const run = (js: string) => JSON.stringify(vm.runInNewContext(js));
    assert.equal(run(asciiOnly(SOURCE)), run(SOURCE));
  });

  it('leaves ASCII text alone', () => {
    const ascii = 'const a = "\\u00e9"; // plain\n';
    assert.equal(asciiOnly(ascii), ascii);
  });
});
