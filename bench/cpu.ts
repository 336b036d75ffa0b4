/** CPU and memory readings shared by the benchmarks (Linux /proc). */
import { readFileSync } from 'node:fs';

const CLOCK_TICK_S = 0.01; // USER_HZ on Linux

/** This process's user + system CPU seconds. */
export function cpuSelf(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** CPU seconds of this process's reaped children (cutime + cstime in /proc/self/stat). */
export function cpuChildren(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * CLOCK_TICK_S;
}

/** Peak RSS (VmHWM, MB) of a live process; 0 once it is gone. */
export function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0; // exited between two samples: the last sample stands
  }
}

/** CPU seconds a live process has used so far (utime + stime); 0 once it is gone. */
export function cpuOfPid(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_S;
  } catch {
    return 0;
  }
}
