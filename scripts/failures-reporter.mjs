// A node:test reporter that writes one line per failing test, as soon as it fails: the file, then the names
// from the outermost suite down ("test/x.test.ts > suite > test"). scripts/test.mjs points it at a file and
// prints that list after the run (also an interrupted one), so the end of a long log names what failed.
// Suites that failed only because a test inside failed, and a file that failed only for that, are left out.
import path from 'node:path';

export default async function* failuresReporter(source) {
  /** Per file, the names of the tests started so far, by nesting level. */
  const open = new Map();
  for await (const event of source) {
    const data = event.data ?? {};
    const file = data.file ? path.relative(process.cwd(), data.file) : '';
    if (event.type === 'test:start') {
      const stack = open.get(file) ?? [];
      stack.length = data.nesting;
      stack.push(data.name);
      open.set(file, stack);
    } else if (event.type === 'test:fail') {
      const error = data.details?.error;
      if (error?.failureType === 'subtestsFailed') continue;
      const names = (open.get(file) ?? []).slice(0, data.nesting);
      names.push(data.name);
      // The file-level test is named by its path: say it once.
      const shown = names.filter((n, i) => !(i === 0 && (n === file || n.endsWith(file))));
      const why = String(error?.cause?.message ?? error?.message ?? '')
        .split('\n')[0]
        .slice(0, 200);
      yield `${[file || '(no file)', ...shown].join(' > ')}${why ? `  (${why})` : ''}\n`;
    }
  }
}
