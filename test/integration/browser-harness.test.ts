/**
 * Proves the browser playback harness (test/helpers/browser.ts) against a live fMP4 HLS that FFmpeg itself
 * makes, not our packager: ffmpeg writes a sliding 5-segment playlist of 2 s segments into a temporary
 * directory served over node:http with CORS, and Chromium + hls.js must play 10 s of it without a stall.
 */
import assert from 'node:assert/strict';
import { type FSWatcher, mkdtempSync, readFileSync, rmSync, watch } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withBrowser } from '../helpers/browser.ts';
import { startTool, type ToolRun } from '../helpers/process.ts';

const WATCH_SECONDS = 10;

const MIME: Record<string, string> = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.m4s': 'video/iso.segment',
  '.mp4': 'video/mp4',
};

/** Serves `dir` read-only with CORS *, the HLS MIME types and no caching. */
function serveDirectory(dir: string): Server {
  return createServer((req, res) => {
    const headers = { 'access-control-allow-origin': '*', 'cache-control': 'no-cache' };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...headers, 'access-control-allow-headers': '*' });
      res.end();
      return;
    }
    const name =
      decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
        .split('/')
        .pop() ?? '';
    const type = MIME[path.extname(name)];
    let body: Buffer | undefined;
    try {
      if (type && !name.startsWith('.')) body = readFileSync(path.join(dir, name));
    } catch {
      // missing (or a segment already deleted): 404
    }
    if (!body || !type) {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': type, 'content-length': body.length });
    res.end(body);
  });
}

function segmentsIn(playlist: string): number {
  try {
    return (readFileSync(playlist, 'utf8').match(/^#EXTINF:/gm) ?? []).length;
  } catch {
    return 0;
  }
}

/** Resolves once the playlist lists `count` segments, watching the directory; fails if ffmpeg exits first. */
function playlistReady(dir: string, count: number, ffmpeg: ToolRun, timeoutMs: number): Promise<void> {
  const playlist = path.join(dir, 'index.m3u8');
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  return new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (segmentsIn(playlist) >= count) resolve();
    };
    watcher = watch(dir, check);
    timer = setTimeout(
      () => reject(new Error(`the playlist did not reach ${count} segments in ${timeoutMs} ms`)),
      timeoutMs,
    );
    ffmpeg.done.then(
      (r) => reject(new Error(`ffmpeg exited (${r.code ?? r.signal}) early: ${r.stderr.slice(-1500)}`)),
      reject,
    );
    check();
  }).finally(() => {
    watcher?.close();
    clearTimeout(timer);
  });
}

describe('browser playback harness', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'browser-harness-'));
  const server = serveDirectory(dir);
  let ffmpeg: ToolRun | undefined;
  let port = 0;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    if (ffmpeg) {
      ffmpeg.kill();
      await ffmpeg.done.catch(() => {});
    }
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it(`plays ${WATCH_SECONDS} s of FFmpeg's live fMP4 HLS in Chromium without a stall`, async () => {
    // biome-ignore format: one flag and its value a line
    const args = [
      '-hide_banner', '-loglevel', 'warning', '-nostdin',
      '-re', '-f', 'lavfi', '-i', 'testsrc2=size=540x960:rate=15',
      '-f', 'lavfi', '-i', 'sine=sample_rate=44100',
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p',
      '-c:a', 'aac',
      '-f', 'hls', '-hls_time', '2', '-hls_list_size', '5', '-hls_segment_type', 'fmp4',
      '-hls_flags', 'delete_segments+independent_segments',
      path.join(dir, 'index.m3u8'),
    ];
    const run = startTool('ffmpeg', args, { timeoutMs: 120_000 });
    ffmpeg = run;
    let exited = false;
    run.done.then(
      () => {
        exited = true;
      },
      () => {},
    );
    await playlistReady(dir, 2, run, 30_000);

    const report = await withBrowser((b) =>
      b.playHls(`http://127.0.0.1:${port}/index.m3u8`, { seconds: WATCH_SECONDS }),
    );
    const summary = JSON.stringify({ ...report, samples: report.samples.length });
    assert.notEqual(report.startedAfterMs, null, `playback never started: ${summary}`);
    assert.deepEqual(report.fatalErrors, [], summary);
    assert.deepEqual(report.stalls, [], summary);
    assert.ok(report.playedSeconds >= WATCH_SECONDS - 3, `played ${report.playedSeconds} s: ${summary}`);
    assert.ok(report.levelsLoaded >= 2, `the live playlist was refreshed: ${summary}`);
    assert.ok(report.samples.length >= (WATCH_SECONDS * 1000) / 250, summary);
    assert.equal(exited, false, 'ffmpeg stayed live the whole time (it is killed in after())');
  });
});
