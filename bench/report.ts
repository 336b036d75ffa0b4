/**
 * Where benchmark reports go. `npm run bench` writes bench/RESULTS.md; the long targets (`npm run soak`,
 * `npm run fuzz`, tens of minutes each) write their own tables under bench/results/, and RESULTS.md quotes
 * the last of each, with the date and machine it ran on.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const RESULTS_DIR = path.join(import.meta.dirname, 'results');

/** The date and the machine: what every report starts with. */
export function machineLine(): string {
  const cpus = os.cpus();
  return `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus[0]?.model ?? 'an unknown CPU'} × ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.versions.node}.`;
}

/** Saves a long run's table as bench/results/{name}.md (BENCH_RESULTS_DIR overrides the folder). */
export function saveLongRun(name: string, title: string, table: string): string {
  const dir = process.env.BENCH_RESULTS_DIR ?? RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.md`);
  writeFileSync(file, `## ${title}\n\n${machineLine()}\n\n${table.trim()}\n`);
  return file;
}

/** The saved long runs, in the given order, for RESULTS.md; a missing one says how to make it. */
export function longRuns(names: { name: string; command: string }[]): string[] {
  return names.map(({ name, command }) => {
    const file = path.join(RESULTS_DIR, `${name}.md`);
    return existsSync(file) ? readFileSync(file, 'utf8') : `## ${name}\n\nNot run yet: \`${command}\`.\n`;
  });
}
