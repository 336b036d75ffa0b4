/** Starts a load generator (bench/load-*.ts) in its own process; resolves its last stdout line as JSON. */
import { type ChildProcess, spawn } from 'node:child_process';

export function child(args: string[]): { proc: ChildProcess; report: Promise<Record<string, number>> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const report = new Promise<Record<string, number>>((resolve) =>
    proc.once('close', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, number>);
      } catch {
        resolve({});
      }
    }),
  );
  return { proc, report };
}
