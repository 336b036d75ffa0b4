/**
 * Recording cost: CPU and memory of a relay (a real `rtmp-relay relay` process) carrying N streams of the
 * ~1.1 Mbit/s glasses fixture with RECORDING=off, then the same with RECORDING=on into an S3-compatible
 * server (s3rver, its own process, so its CPU is not counted), and the time from a stream's end (its
 * reconnect window closed) to its replay being listed `ready` from the store. Publishers run in their own
 * processes. Usage: node --import tsx bench/record.ts [STREAMS] (default 4).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixturePath } from '../test/fixtures/generate.ts';
import { freePort } from '../test/helpers/ports.ts';
import { killGroup, spawnRelay } from '../test/helpers/relay-process.ts';
import { cpuOfPid, peakRss } from './cpu.ts';
import { machineLine } from './report.ts';

const STREAMS = Number(process.argv[2] ?? 4);
const WINDOW_SECONDS = 1;
const here = import.meta.dirname;

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function startS3(dir: string): Promise<{ endpoint: string; stop(): void }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      path.join(here, '../node_modules/s3rver/bin/s3rver.js'),
      '-d',
      dir,
      '-a',
      '127.0.0.1',
      '-p',
      String(port),
      '-s',
      '--configure-bucket',
      'bench',
    ],
    { stdio: 'ignore', detached: true },
  );
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(endpoint);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // not listening yet
    }
  }
  return { endpoint, stop: () => killGroup(child.pid!, 'SIGKILL') };
}

interface Run {
  cpuCoresPerStream: number;
  rssMb: number;
  peakRssMb: number;
  seconds: number;
  /** Per stream: ms from the stream's end (window closed) to its recording listed ready. */
  listedMs: number[];
}

async function run(
  recording: boolean,
  file: string,
  s3: { endpoint: string } | null,
  spool: string,
): Promise<Run> {
  const env: Record<string, string> = {
    RELAY_SHARED_SECRET: 'bench-record-relay-secret-0123456789',
    PUBLISH_AUTH: 'off',
    CLEAN_PROFILE: 'copy',
    RECONNECT_WINDOW_SECONDS: String(WINDOW_SECONDS),
    LOG_LEVEL: 'warn',
    RECORDING: recording ? 'on' : 'off',
    RECORDING_SPOOL_DIR: spool,
  };
  if (s3) {
    Object.assign(env, {
      RECORDING_URL: 's3://bench/rec',
      S3_ENDPOINT: s3.endpoint,
      S3_FORCE_PATH_STYLE: 'on',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    });
  }
  const relay = spawnRelay(`bench-rec-${recording ? 'on' : 'off'}`, 'http://127.0.0.1:9', {
    ...env,
    LOG_LEVEL: 'info',
  });
  const rtmpPort = Number((await relay.waitLine((l) => l.msg === 'RTMP listening', 60_000)).port);
  const hlsPort = Number(
    (await relay.waitLine((l) => typeof l.msg === 'string' && l.msg.startsWith('HLS origin'), 60_000))
      .hlsPort,
  );
  await new Promise((r) => setTimeout(r, 1000)); // start-up settles
  const cpu0 = cpuOfPid(relay.pid);
  const t0 = performance.now();
  const names = Array.from({ length: STREAMS }, (_, i) => `b${i}`);
  const ends = new Map<string, number>();
  let rssMax = 0;
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, rss(relay.pid));
  }, 500);
  await Promise.all(
    names.map(
      (name) =>
        new Promise<void>((resolve, reject) => {
          const child = spawn(
            process.execPath,
            ['--import', 'tsx', path.join(here, 'publish-child.ts'), file, String(rtmpPort), 'bench', name],
            { stdio: 'ignore' },
          );
          child.once('exit', (code) => {
            ends.set(name, performance.now());
            code === 0 ? resolve() : reject(new Error(`publisher ${name} exited ${code}`));
          });
        }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuOfPid(relay.pid) - cpu0;
  clearInterval(sampler);
  const listedMs: number[] = [];
  if (recording) {
    await Promise.all(
      names.map(async (name) => {
        // The stream ends when its reconnect window closes after its publisher left.
        const endedAt = (ends.get(name) ?? 0) + WINDOW_SECONDS * 1000;
        for (;;) {
          const res = await fetch(`http://127.0.0.1:${hlsPort}/recordings/bench/${name}`);
          const body = (await res.json()) as { recordings: { state: string }[] };
          if (body.recordings.some((r) => r.state === 'ready')) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        listedMs.push(performance.now() - endedAt);
      }),
    );
  }
  const result: Run = {
    cpuCoresPerStream: cpu / seconds / STREAMS,
    rssMb: rssMax,
    peakRssMb: peakRss(relay.pid),
    seconds,
    listedMs,
  };
  killGroup(relay.pid, 'SIGKILL');
  await relay.exited;
  return result;
}

const file = await fixturePath('glasses-854x480.flv');
const duration = 20.015;
const mbps = (statSync(file).size * 8) / duration / 1e6;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-record-'));
const s3 = await startS3(path.join(tmp, 's3'));
try {
  const off = await run(false, file, null, path.join(tmp, 'spool-off'));
  const on = await run(true, file, s3, path.join(tmp, 'spool-on'));
  const added = on.cpuCoresPerStream - off.cpuCoresPerStream;
  const sorted = [...on.listedMs].sort((a, b) => a - b);
  const pct = (v: number): string => `${(v * 100).toFixed(2)} %`;
  const lines = [
    `## Recording (bench/record.ts)`,
    '',
    machineLine(),
    '',
    `${STREAMS} streams of the glasses fixture (${mbps.toFixed(2)} Mbit/s, ${duration.toFixed(0)} s, copy), relay in its own process, S3 = s3rver in another.`,
    '',
    '| | relay CPU per stream (of a core) | relay RSS peak (MB) |',
    '| --- | --- | --- |',
    `| RECORDING=off | ${pct(off.cpuCoresPerStream)} | ${off.rssMb.toFixed(0)} |`,
    `| RECORDING=on (S3) | ${pct(on.cpuCoresPerStream)} | ${on.rssMb.toFixed(0)} |`,
    `| recording adds | ${pct(added)} per stream = ${pct(added / mbps)} per Mbit/s (goal ≤ 0.50 %) | ${((on.rssMb - off.rssMb) / STREAMS).toFixed(1)} per stream |`,
    '',
    `Stream end (reconnect window closed) → replay listed ready: median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)} ms, max ${sorted.at(-1)?.toFixed(0)} ms.`,
  ];
  console.log(lines.join('\n'));
} finally {
  s3.stop();
  rmSync(tmp, { recursive: true, force: true });
}
