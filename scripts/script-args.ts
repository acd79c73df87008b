/**
 * The command line of the long-running scripts (`npm run soak`,
 * `npm run figures:ari`): numeric `--flag N` or `--flag=N` options, `--keep`
 * and `--help`. A bad argument exits 2 naming it.
 */
export function parseScriptArgs<K extends string>(opts: {
  readonly script: string;
  readonly usage: string;
  readonly argv: readonly string[];
  /** Flag (`--minutes`) to the key of `defaults` it sets. */
  readonly flags: Readonly<Record<string, K>>;
  readonly defaults: Readonly<Record<K, number>>;
  /** Whether 0 is a valid value (else only positive numbers are). */
  readonly allowZero: boolean;
}): Record<K, number> & { keep: boolean } {
  const fail = (message: string): never => {
    console.error(`${opts.script}: ${message}`);
    process.exit(2);
  };
  const values: Record<K, number> = { ...opts.defaults };
  let keep = false;
  for (let i = 0; i < opts.argv.length; i++) {
    const a = opts.argv[i] ?? '';
    const [flag, inline] = a.includes('=') ? a.split('=', 2) : [a, undefined];
    const key = opts.flags[flag ?? ''];
    if (key) {
      const v = Number(inline ?? opts.argv[++i]);
      const ok = Number.isFinite(v) && (opts.allowZero ? v >= 0 : v > 0);
      if (!ok) fail(`${flag} wants a ${opts.allowZero ? 'number >= 0' : 'positive number'}`);
      values[key] = v;
    } else if (a === '--keep') keep = true;
    else if (a === '--help' || a === '-h') {
      console.log(opts.usage);
      process.exit(0);
    } else fail(`unknown argument ${JSON.stringify(a)} (try --help)`);
  }
  return { ...values, keep };
}
