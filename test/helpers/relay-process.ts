/**
 * Real `rtmp-relay` processes for the fault tests (relay failover, chaos): a relay or a cloud started with
 * `node bin/rtmp-relay.mjs …` in its own process group (killed as a group, like a node going away), its
 * JSON log lines kept and awaitable; process-group and /proc helpers to prove that no FFmpeg is left
 * behind; and what an app heard, with a way to wait for a status.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ManagedStreamStatus } from '../../src/contracts/mentra.ts';
import type { ManagedStreamClient } from '../../src/sdk/client.ts';
import { LOOPBACK_CLOUD_ENV, LOOPBACK_RELAY_ENV } from './ports.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Process groups of the nodes running now: killed when this test process exits, however it ends. */
const runningGroups = new Set<number>();
process.once('exit', () => {
  for (const pgid of runningGroups) killGroup(pgid, 'SIGKILL');
});

export type LogLine = Record<string, unknown>;

export interface NodeProcess {
  /** The relay id, or "cloud". */
  id: string;
  child: ChildProcess;
  /** Also the process group id (it leads its own group). */
  pid: number;
  exited: Promise<void>;
  /** Every JSON log line so far, oldest first. */
  readonly lines: readonly LogLine[];
  /** The first line (already seen, or coming) that matches; rejects after `timeoutMs` or on exit. */
  waitLine(match: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
}

/** Starts `rtmp-relay {command}` with `env` over this process' environment, in its own process group. */
export function spawnNode(command: 'relay' | 'cloud', id: string, env: Record<string, string>): NodeProcess {
  const child = spawn(process.execPath, ['bin/rtmp-relay.mjs', command], {
    cwd: ROOT,
    // JSON lines whatever the caller's LOG_FORMAT: they are parsed here.
    env: { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: SIGKILLed (or SIGSTOPped) as a group
  });
  if (child.pid === undefined) throw new Error(`${command} ${id} did not start`);
  const pgid = child.pid;
  runningGroups.add(pgid);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const lines: LogLine[] = [];
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return; // not a log line
    }
    lines.push(line);
    for (const w of waiters) {
      if (w.match(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  let exitedCode = '';
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      runningGroups.delete(pgid);
      exitedCode = String(code ?? signal);
      resolve();
    }),
  );
  const waitLine = (match: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine> => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const fail = (why: string): void => {
        waiters.delete(waiter);
        reject(
          new Error(
            `${command} ${id}: ${why}\nstderr: ${stderr}\nlast lines: ${JSON.stringify(lines.slice(-5))}`,
          ),
        );
      };
      const timer = setTimeout(() => fail(`no matching log line in ${timeoutMs} ms`), timeoutMs);
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.add(waiter);
      void exited.then(() => {
        clearTimeout(timer);
        if (waiters.has(waiter)) fail(`exited (${exitedCode}) before the line`);
      });
    });
  };
  return { id, child, pid: child.pid, exited, lines, waitLine };
}

/** A relay node on free loopback ports, announcing 127.0.0.1, registering with `cloudUrl`. */
export function spawnRelay(id: string, cloudUrl: string, env: Record<string, string>): NodeProcess {
  return spawnNode('relay', id, {
    RELAY_ID: id,
    ...LOOPBACK_RELAY_ENV,
    RELAY_PUBLIC_URL: '127.0.0.1',
    CLOUD_API_URL: cloudUrl,
    ...env,
  });
}

/** A cloud on a free loopback port; resolves with its URL once it listens. */
export async function spawnCloud(
  env: Record<string, string>,
  timeoutMs: number,
): Promise<NodeProcess & { url: string; port: number }> {
  const cloud = spawnNode('cloud', 'cloud', { ...LOOPBACK_CLOUD_ENV, ...env });
  const line = await cloud.waitLine((l) => l.msg === 'cloud listening', timeoutMs);
  const port = Number(line.port);
  return Object.assign(cloud, { port, url: `http://127.0.0.1:${port}` });
}

/** Signals a whole process group; a group that is gone already is fine. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/** True while the process group has a member (signal 0 only checks). */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** /proc/{pid}/stat as {comm, state, ppid}; null when the process is gone. */
export function procStat(pid: number): { comm: string; state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat
      .slice(close + 2)
      .split(' ')
      .slice(0, 2);
    return { comm, state: state!, ppid: Number(ppid) };
  } catch {
    return null;
  }
}

const running = (s: { state: string } | null): boolean => s !== null && s.state !== 'Z' && s.state !== 'X';

/**
 * FFmpeg processes whose parent is this test process, from /proc: zombies included (an exited child nobody
 * reaped is a leak too), unlike `ffmpegChildren(pid)`, which looks at a relay process's running ones.
 */
export function ffmpegChildrenOfThisProcess(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === 'ffmpeg' && ppid === process.pid) out.push(Number(pid));
    } catch {
      // the process ended while we looked: not ours to count
    }
  }
  return out;
}

/** The running FFmpeg processes whose parent is `pid` (none when `pid` is gone). */
export function ffmpegChildren(pid: number): number[] {
  let children: number[];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return children.filter((c) => {
    const s = procStat(c);
    return s?.comm === 'ffmpeg' && running(s);
  });
}

/** Gone, or a zombie nobody has reaped yet (it runs nothing), or the pid now belongs to something else. */
export function ffmpegGone(pid: number): boolean {
  const s = procStat(pid);
  return !running(s) || s!.comm !== 'ffmpeg';
}

/**
 * The FFmpeg processes of known parents (relays, glasses simulators), remembered with their parent at each
 * `scan`, so that one left running after its parent died (reparented to init or a subreaper) is found.
 */
export class FfmpegTracker {
  readonly #parentOf = new Map<number, number>();

  /** Records the running FFmpeg children of each parent now; returns them by parent. */
  scan(parents: Iterable<number>): Map<number, number[]> {
    const out = new Map<number, number[]>();
    for (const parent of parents) {
      const pids = ffmpegChildren(parent);
      out.set(parent, pids);
      for (const pid of pids) this.#parentOf.set(pid, parent);
    }
    return out;
  }

  /** Known FFmpeg processes still running whose parent is no longer the one they had. */
  orphans(): { pid: number; parent: number }[] {
    const out: { pid: number; parent: number }[] = [];
    for (const [pid, parent] of this.#parentOf) {
      const s = procStat(pid);
      if (!running(s) || s!.comm !== 'ffmpeg')
        this.#parentOf.delete(pid); // gone (the pid may be reused)
      else if (s!.ppid !== parent) out.push({ pid, parent });
    }
    return out;
  }
}

/** Polls `check` every 50 ms until it holds or `timeoutMs` passes (for what no event announces). */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline)
      throw new Error(
        `${what}: not within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface HeardStatuses {
  seen: ManagedStreamStatus[];
  waitFor(
    match: (s: ManagedStreamStatus, seen: ManagedStreamStatus[]) => boolean,
    ms: number,
  ): Promise<ManagedStreamStatus>;
}

/** Statuses an app heard, and a way to wait for one (only statuses heard from now on match). */
export function watchStatuses(client: ManagedStreamClient): HeardStatuses {
  const seen: ManagedStreamStatus[] = [];
  const waiters = new Set<(s: ManagedStreamStatus) => void>();
  client.onManagedStreamStatus((s) => {
    seen.push(s);
    for (const w of [...waiters]) w(s);
  });
  return {
    seen,
    waitFor: (match, ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`no matching status in ${ms} ms; heard ${JSON.stringify(seen.map((s) => s.status))}`),
          );
        }, ms);
        const check = (s: ManagedStreamStatus): void => {
          if (!match(s, seen)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(s);
        };
        waiters.add(check);
      }),
  };
}
