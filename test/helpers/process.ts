/**
 * Runs external tools (ffmpeg, ffprobe, GStreamer) for tests: argv arrays, own process group, killed with
 * the group when the test is done, every exit reported. A missing tool fails the test (never a skip).
 * A tool still running when the test process exits (however it ends: a failed test, an interrupted run)
 * is killed with it: its own process group keeps it out of the runner's group kill.
 */
import { spawn } from 'node:child_process';

/** Process groups of the tools running now; one exit hook kills them all. */
const running = new Set<number>();
process.once('exit', () => {
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

export interface ToolRun {
  pid: number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(signal?: NodeJS.Signals): void;
}

export function startTool(command: string, args: string[], options: { timeoutMs?: number } = {}): ToolRun {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout = (stdout + d).slice(-200_000);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-200_000);
  });
  const kill = (signal: NodeJS.Signals = 'SIGKILL'): void => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone: nothing to kill
    }
  };
  if (child.pid !== undefined) running.add(child.pid);
  const timer = options.timeoutMs ? setTimeout(() => kill(), options.timeoutMs) : undefined;
  const done = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      if (child.pid !== undefined) running.delete(child.pid);
      reject(new Error(`${command} could not start (${err.message}); run "npm test" to install it`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) running.delete(child.pid);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { pid: child.pid ?? -1, done, kill };
}

/** Runs a tool to completion and fails with its stderr when it exits non-zero. */
export async function runTool(
  command: string,
  args: string[],
  options: { timeoutMs?: number } = {},
): Promise<string> {
  const result = await startTool(command, args, { timeoutMs: options.timeoutMs ?? 120_000 }).done;
  if (result.code !== 0) {
    throw new Error(`${command} exited with ${result.code ?? result.signal}: ${result.stderr.slice(-2000)}`);
  }
  return result.stdout;
}

export interface ProbedStream {
  codec_type: string;
  codec_name: string;
  profile?: string;
  nb_read_frames?: string;
  width?: number;
  height?: number;
  sample_rate?: string;
}

/** ffprobe with frame counting. */
export async function probe(file: string): Promise<ProbedStream[]> {
  const out = await runTool('ffprobe', [
    '-v',
    'error',
    '-count_frames',
    '-show_entries',
    'stream=codec_type,codec_name,profile,nb_read_frames,width,height,sample_rate',
    '-of',
    'json',
    file,
  ]);
  return (JSON.parse(out) as { streams: ProbedStream[] }).streams;
}
