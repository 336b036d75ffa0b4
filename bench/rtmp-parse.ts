/**
 * RTMP parsing throughput: RTMP bytes in → FLV bytes out, per CPU second, and the cost in % of one core per
 * glasses stream, for 1 Mbps and 6 Mbps publishes (540x960, 14 fps, H.264 + AAC, recorded from real ffmpeg).
 *
 * Compared in the same run against the reference: FFmpeg's own RTMP server and FLV muxer
 * (`ffmpeg -listen 1 -i rtmp://… -c copy -f flv`), fed the same recorded bytes over loopback TCP.
 *   ours (in memory)  the whole stack (handshake, chunks, messages, AMF0, publish, FLV sink) without sockets
 *   ours (TCP)        the same through a real listener; the sender is a separate process
 *   ffmpeg (TCP)      the reference, whole run (process start and stream probing included)
 *   … marginal        without fixed costs (process start, stream probing, connection set-up):
 *                     CPU(whole) − CPU(first sixth), scaled to the whole
 * Each row's ratio is against the ffmpeg row of the same kind (whole run, or marginal).
 * Goal: under 0.5% of a core per 1 Mbps stream.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { FlvSink } from '../src/media/flv-sink.ts';
import { RtmpServer } from '../src/rtmp/server.ts';
import { silentLogger } from '../src/shared/logger.ts';
import { onceEvent } from '../src/shared/typed-emitter.ts';
import { recordPublish } from '../test/fixtures/generate.ts';
import { MemorySocket } from '../test/helpers/memory-socket.ts';
import { freePort } from '../test/helpers/ports.ts';
import { cpuChildren, cpuSelf } from './cpu.ts';

const MEDIA_SECONDS = Number(process.env.BENCH_MEDIA_SECONDS ?? 60);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);

interface Row {
  stream: string;
  impl: string;
  cpuS: number;
  bytes: number;
  flvBytes: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function nullSink(): { out: Writable; bytes: () => number } {
  let n = 0;
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      n += chunk.length;
      cb();
    },
  });
  return { out, bytes: () => n };
}

function attachFlv(server: RtmpServer, counter: { flv: number }): void {
  server.on('publish', (publish) => {
    const { out, bytes } = nullSink();
    const sink = new FlvSink(out);
    publish.on('start', (s) => sink.start(s));
    publish.on('tag', (t) => sink.write(t));
    publish.once('end', () => {
      counter.flv = bytes();
    });
  });
}

async function oursInMemory(recording: Buffer): Promise<{ cpuS: number; flvBytes: number }> {
  const server = new RtmpServer({ log: silentLogger() });
  const counter = { flv: 0 };
  attachFlv(server, counter);
  const socket = new MemorySocket('127.0.0.1');
  const conn = server.handleSocket(socket)!;
  const ended = onceEvent(server, 'end');
  const t0 = cpuSelf();
  // Feed as TCP would: 64 KiB reads, letting the async authorization run after the publish command.
  for (let at = 0; at < recording.length; at += 65536) {
    socket.feed(recording.subarray(at, at + 65536));
    while (conn.state === 'authorizing') await new Promise<void>((r) => setImmediate(r));
  }
  socket.peerEnd();
  await ended;
  const cpuS = cpuSelf() - t0;
  await server.close();
  return { cpuS, flvBytes: counter.flv };
}

/**
 * Sends a file to 127.0.0.1:port from a separate process, reading (and discarding) what comes back. It retries
 * a refused connection, since nothing tells when `ffmpeg -listen` is listening.
 */
function sendFromChild(file: string, port: number): Promise<void> {
  const script = `const net=require('net'),fs=require('fs');const data=fs.readFileSync(process.argv[1]);let tries=0;
function go(){const s=net.connect(${port},'127.0.0.1',()=>s.end(data));s.on('data',()=>{});
s.on('error',(e)=>{if(e.code==='ECONNREFUSED'&&tries++<400)setTimeout(go,10);});s.on('close',(h)=>{if(!h)process.exit(0);});}go();`;
  const child = spawn(process.execPath, ['-e', script, file], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
}

async function oursTcp(file: string): Promise<{ cpuS: number; flvBytes: number }> {
  const server = new RtmpServer({ log: silentLogger() });
  const counter = { flv: 0 };
  attachFlv(server, counter);
  const port = await server.listen(0, '127.0.0.1');
  const ended = onceEvent(server, 'end');
  const t0 = cpuSelf();
  await Promise.all([sendFromChild(file, port), ended]);
  const cpuS = cpuSelf() - t0;
  await server.close();
  return { cpuS, flvBytes: counter.flv };
}

async function ffmpegTcp(file: string, outFile: string): Promise<{ cpuS: number; flvBytes: number }> {
  const port = await freePort();
  const before = cpuChildren();
  const child = spawn(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'quiet', '-listen', '1', '-i', `rtmp://127.0.0.1:${port}/live/x`].concat([
      '-c',
      'copy',
      '-f',
      'flv',
      '-y',
      outFile,
    ]),
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
  await Promise.all([sendFromChild(file, port), exited]);
  return { cpuS: cpuChildren() - before, flvBytes: readFileSync(outFile).length };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const tmp = os.tmpdir();
  for (const kbps of [1000, 6000]) {
    const stream = `${kbps / 1000} Mbps target`;
    process.stderr.write(`recording ${MEDIA_SECONDS} s at ${stream} from ffmpeg…\n`);
    const recording = await recordPublish({ client: 'ffmpeg', seconds: MEDIA_SECONDS, videoKbps: kbps });
    const file = path.join(tmp, `bench-rtmp-${kbps}.rtmp`);
    writeFileSync(file, recording);
    const prefixFile = path.join(tmp, `bench-rtmp-${kbps}-prefix.rtmp`);
    const prefixBytes = Math.floor(recording.length / 6);
    writeFileSync(prefixFile, recording.subarray(0, prefixBytes));
    const flvOut = path.join(tmp, `bench-rtmp-${kbps}.flv`);
    /** CPU(whole) − CPU(first sixth), scaled to the whole: the cost without process or connection set-up. */
    const marginal =
      (run: (f: string) => Promise<{ cpuS: number; flvBytes: number }>) =>
      async (): Promise<{ cpuS: number; flvBytes: number }> => {
        const whole = await run(file);
        const prefix = await run(prefixFile);
        const scale = recording.length / (recording.length - prefixBytes);
        return { cpuS: Math.max(0.001, (whole.cpuS - prefix.cpuS) * scale), flvBytes: whole.flvBytes };
      };
    const impls: [string, () => Promise<{ cpuS: number; flvBytes: number }>][] = [
      ['ours (in memory)', () => oursInMemory(recording)],
      ['ours (TCP)', () => oursTcp(file)],
      ['ffmpeg -listen (TCP)', () => ffmpegTcp(file, flvOut)],
      ['ours marginal (TCP)', marginal(oursTcp)],
      ['ffmpeg marginal (TCP)', marginal((f) => ffmpegTcp(f, flvOut))],
    ];
    for (const [impl, run] of impls) {
      await run(); // warm-up
      const runs: { cpuS: number; flvBytes: number }[] = [];
      for (let i = 0; i < REPEATS; i++) runs.push(await run());
      rows.push({
        stream,
        impl,
        cpuS: median(runs.map((r) => r.cpuS)),
        bytes: recording.length,
        flvBytes: runs[0]!.flvBytes,
      });
    }
  }

  const lines = [
    `RTMP parsing, ${MEDIA_SECONDS} s of 540x960 14 fps H.264 + AAC per stream, median of ${REPEATS} runs (${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, Node ${process.versions.node})`,
    '',
    '| stream | measured bitrate | implementation | RTMP in | FLV out | CPU s | MB in per CPU s | % of a core per stream | CPU vs ffmpeg |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const refName = r.impl.includes('marginal') ? 'ffmpeg marginal (TCP)' : 'ffmpeg -listen (TCP)';
    const ref = rows.find((x) => x.stream === r.stream && x.impl === refName)!;
    const mbps = ((r.bytes * 8) / MEDIA_SECONDS / 1e6).toFixed(2);
    lines.push(
      `| ${r.stream} | ${mbps} Mbps | ${r.impl} | ${(r.bytes / 1e6).toFixed(1)} MB | ${(r.flvBytes / 1e6).toFixed(1)} MB | ${r.cpuS.toFixed(3)} | ${(r.bytes / 1e6 / r.cpuS).toFixed(0)} | ${((r.cpuS / MEDIA_SECONDS) * 100).toFixed(3)}% | ${(r.cpuS / ref.cpuS).toFixed(2)}× |`,
    );
  }
  const goal = rows.find((r) => r.stream.startsWith('1 Mbps') && r.impl === 'ours (TCP)')!;
  const pct = (goal.cpuS / MEDIA_SECONDS) * 100;
  lines.push(
    '',
    `Goal: under 0.5% of a core per 1 Mbps stream → ours (TCP) ${pct.toFixed(3)}%: ${pct < 0.5 ? 'met' : 'NOT met'}.`,
  );
  console.log(lines.join('\n'));
}

await main();
