/**
 * Origin throughput: the relay's HLS origin against nginx (Debian) serving the same bytes from tmpfs, in one
 * run. The glasses fixture is published once in copy (as fast as it goes); the stream then waits for its
 * publisher, so its playlist, segments and parts stay put. Every listed segment and part is fetched once
 * and written under /dev/shm with the same path, for nginx (one worker, sendfile, no access log: one core,
 * as the relay's event loop has). wrk (keep-alive, 2 threads, 64 connections) asks each server for the parts,
 * then for the segments, round robin, for a fixed time; the relay keeps counting viewers and timing requests
 * as it does in production. Goal: the relay serves ≥ 0.5× nginx's requests per second.
 * Playlists are measured too (the plain live playlist, rendered per request by the relay, a static copy for
 * nginx). With BENCH_ORIGIN_PLAYBACK_AUTH=token the relay checks a playback token on every request and writes
 * it into every URI of the playlists (the same bytes otherwise): run it with and without to see what tokens cost.
 * Env: BENCH_ORIGIN_SECONDS (10 per run), BENCH_ORIGIN_CONNECTIONS (64), BENCH_ORIGIN_PLAYBACK_AUTH (off).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createPlaybackTokenSigner } from '../src/shared/playback-token.ts';
import { fixturePath } from '../test/fixtures/generate.ts';
import { publishFlv } from '../test/helpers/flv-publisher.ts';
import { runTool } from '../test/helpers/process.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';
import { cpuOfPid, cpuSelf } from './cpu.ts';

const SECONDS = Number(process.env.BENCH_ORIGIN_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_ORIGIN_CONNECTIONS ?? 64);
const STREAM_PATH = 'bench-user/origin';
const PLAYBACK_TOKENS = process.env.BENCH_ORIGIN_PLAYBACK_AUTH === 'token';
const PLAYBACK_SECRET = 'bench-origin-playback-secret-0123456789';
/** What every relay URL carries: the stream's playback token when they are on. */
const QUERY = PLAYBACK_TOKENS
  ? `?token=${createPlaybackTokenSigner({ secret: PLAYBACK_SECRET, ttlSeconds: 86_400 }).sign('bench-user', 'origin')}`
  : '';

interface Run {
  server: string;
  kind: string;
  requestsPerS: number;
  mbPerS: number;
  serverCores: number;
  errors: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

/** wrk round robin over `paths`; requests/s and MB/s from its summary. */
async function wrk(
  base: string,
  paths: string[],
  dir: string,
): Promise<Omit<Run, 'server' | 'kind' | 'serverCores'>> {
  const script = path.join(dir, `paths-${Date.now()}.lua`);
  writeFileSync(
    script,
    `local paths = {${paths.map((p) => JSON.stringify(p)).join(',')}}\nlocal i = 0\n` +
      'request = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n',
  );
  const out = await runTool(
    'wrk',
    ['-t2', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', '-s', script, base],
    { timeoutMs: (SECONDS + 30) * 1000 },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const transfer = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(out);
  const unit = { B: 1 / 1048576, KB: 1 / 1024, MB: 1, GB: 1024 }[transfer?.[2] ?? 'MB'] ?? 1;
  // Non-2xx answers and socket errors (a timeout is a request that never got an answer) both count.
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors =
    Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) +
    (socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0);
  return { requestsPerS: rps, mbPerS: Number(transfer?.[1]) * unit, errors };
}

const work = mkdtempSync('/dev/shm/bench-origin-');
const { relay, records } = await startTestRelay({
  CLEAN_PROFILE: 'copy',
  RECONNECT_WINDOW_SECONDS: '600',
  ...(PLAYBACK_TOKENS ? { PLAYBACK_AUTH: 'token', PLAYBACK_TOKEN_SECRET: PLAYBACK_SECRET } : {}),
});
let nginx: ChildProcess | null = null;
try {
  const pub = publishFlv(await fixturePath('glasses-854x480.flv'), {
    port: relay.rtmpPort,
    user: 'bench-user',
    stream: 'origin',
    speed: Number.POSITIVE_INFINITY,
  });
  await pub.done;
  const rec = records.get('origin')!;
  const relayBase = `http://127.0.0.1:${relay.hlsPort}`;
  const playlist = await (await fetch(`${relayBase}/hls/${STREAM_PATH}/index.m3u8${QUERY}`)).text();
  const segments = [...playlist.matchAll(/^([0-9a-f]{8}-seg\d+\.m4s)(\?\S*)?$/gm)].map((m) => m[1]!);
  const parts = [...playlist.matchAll(/^#EXT-X-PART:.*URI="([0-9a-f]{8}-part\d+\.m4s)(\?[^"]*)?"/gm)].map(
    (m) => m[1]!,
  );
  if (segments.length < 3 || parts.length < 3) throw new Error(`too little to serve:\n${playlist}`);
  // Listed parts only (not the preload hint's, which does not exist yet). The same bytes on tmpfs, same paths.
  const root = path.join(work, 'www');
  mkdirSync(path.join(root, 'hls', STREAM_PATH), { recursive: true });
  let segmentBytes = 0;
  let partBytes = 0;
  for (const name of [...segments, ...parts]) {
    const body = Buffer.from(
      await (await fetch(`${relayBase}/hls/${STREAM_PATH}/${name}${QUERY}`)).arrayBuffer(),
    );
    writeFileSync(path.join(root, 'hls', STREAM_PATH, name), body);
    if (name.includes('-seg')) segmentBytes += body.length;
    else partBytes += body.length;
  }
  writeFileSync(path.join(root, 'hls', STREAM_PATH, 'index.m3u8'), playlist);
  const nginxPort = await freePort();
  const conf = path.join(work, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'worker_processes 1;',
      'daemon off;',
      `pid ${path.join(work, 'nginx.pid')};`,
      `error_log ${path.join(work, 'error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;',
      `  client_body_temp_path ${work}; proxy_temp_path ${work}; fastcgi_temp_path ${work};`,
      `  uwsgi_temp_path ${work}; scgi_temp_path ${work};`,
      '  types { video/iso.segment m4s; }',
      `  server { listen 127.0.0.1:${nginxPort}; root ${root}; location / { add_header Cache-Control "public, max-age=31536000, immutable"; } }`,
      '}',
    ].join('\n'),
  );
  nginx = spawn('nginx', ['-c', conf, '-p', work], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${nginxPort}/hls/${STREAM_PATH}/${segments[0]}`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const nginxWorker = Number(
    (await runTool('pgrep', ['-P', String(nginx.pid)]).catch(() => '')).trim().split('\n')[0],
  );

  const runs: Run[] = [];
  for (const [kind, names] of [
    ['parts', parts],
    ['segments', segments],
    ['playlists', ['index.m3u8']],
  ] as const) {
    const urls = names.map((n) => `/hls/${STREAM_PATH}/${n}`);
    const before = cpuSelf();
    const ours = await wrk(
      relayBase,
      urls.map((u) => `${u}${QUERY}`),
      work,
    );
    runs.push({
      server: `relay (Node, fastify${PLAYBACK_TOKENS ? ', playback tokens' : ''})`,
      kind,
      serverCores: (cpuSelf() - before) / SECONDS,
      ...ours,
    });
    const pid = nginxWorker || nginx.pid!;
    const n0 = cpuOfPid(pid);
    const theirs = await wrk(`http://127.0.0.1:${nginxPort}`, urls, work);
    runs.push({
      server: 'nginx (1 worker, sendfile)',
      kind,
      serverCores: (cpuOfPid(pid) - n0) / SECONDS,
      ...theirs,
    });
  }

  const avg = (bytes: number, n: number): string => `${(bytes / n / 1024).toFixed(0)} KB`;
  console.log(
    `Origin throughput, ${SECONDS} s per run, wrk -t2 -c${CONNECTIONS} keep-alive on loopback: ${parts.length} parts (avg ${avg(partBytes, parts.length)}), ${segments.length} segments (avg ${avg(segmentBytes, segments.length)}) and the live playlist (${(playlist.length / 1024).toFixed(1)} KB) of the glasses stream in copy; playback tokens ${PLAYBACK_TOKENS ? 'on (checked on every request, written into every playlist URI)' : 'off'}\n`,
  );
  console.log('| resource | server | requests/s | MB/s | server CPU (cores) | errors | vs nginx |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of runs) {
    const ref = runs.find((x) => x.kind === r.kind && x.server.startsWith('nginx'))!;
    console.log(
      `| ${r.kind} | ${r.server} | ${r.requestsPerS.toFixed(0)} | ${r.mbPerS.toFixed(0)} | ${r.serverCores.toFixed(2)} | ${r.errors} | ${(r.requestsPerS / ref.requestsPerS).toFixed(2)}× |`,
    );
  }
  const worst = Math.min(
    ...runs
      .filter((r) => r.server.startsWith('relay'))
      .map(
        (r) =>
          r.requestsPerS / runs.find((x) => x.kind === r.kind && x.server.startsWith('nginx'))!.requestsPerS,
      ),
  );
  console.log(
    `\nGoal ≥ 0.5× nginx: the relay's worst ratio is ${worst.toFixed(2)}× (${worst >= 0.5 ? 'met' : 'not met'}).`,
  );
  void rec;
} finally {
  nginx?.kill('SIGQUIT');
  await relay.close();
  rmSync(work, { recursive: true, force: true });
}
