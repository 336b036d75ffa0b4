/**
 * Debian's Chromium (/usr/bin/chromium, playwright-core; see ./browser.ts) as a WHEP player: a page on a small
 * loopback server offers recvonly video (and audio), POSTs the complete offer (non-trickle, as the WHEP
 * draft's simplest client does), applies the answer and plays the stream muted in a <video>. The test reads
 * what the viewer got from RTCPeerConnection.getStats(): frames decoded, packets lost, NACKs sent, the
 * jitter buffer's delay, and when the first frame was presented.
 *
 * `--allow-loopback-in-peer-connection` lets ICE use 127.0.0.1 (tests and benchmarks run on loopback only).
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './browser.ts';

export const WHEP_CHROMIUM_ARGS = [...CHROMIUM_ARGS, '--allow-loopback-in-peer-connection', '--mute-audio'];

export interface WhepAnswer {
  status: number;
  location: string | null;
  body: string;
}

export interface WhepStats {
  framesDecoded: number;
  framesReceived: number;
  keyFramesDecoded: number;
  packetsReceived: number;
  packetsLost: number;
  nackCount: number;
  pliCount: number;
  freezeCount: number;
  /** Average time a frame spent in the jitter buffer, ms (jitterBufferDelay / jitterBufferEmittedCount). */
  jitterBufferMs: number | null;
  audioPacketsReceived: number;
  audioSamplesReceived: number;
  connectionState: string;
  /** ms from the POST to the first presented frame (requestVideoFrameCallback), null before. */
  firstFrameMs: number | null;
  /** ms from the POST to the answer being applied. */
  answeredMs: number | null;
}

export interface WhepViewer {
  answer: WhepAnswer;
  /** With PlayOptions.stamps: the frame-number stamp of each presented frame (test/fixtures/steady.ts). */
  stamps(): Promise<{ value: number; presentedAt: number }[]>;
  stats(): Promise<WhepStats>;
  /** Resolves once `framesDecoded` reached `n`; rejects after `timeoutMs`. */
  waitFrames(n: number, timeoutMs: number): Promise<WhepStats>;
  /** DELETEs the session (when it was created and `delete` is not false), then closes the peer connection. */
  close(options?: { delete?: boolean }): Promise<number | null>;
}

export interface WhepBrowser {
  /** Opens a viewer page and POSTs its offer to `url`. */
  play(
    url: string,
    options?: { audio?: boolean; video?: boolean; stamps?: { bits: number; height: number } },
  ): Promise<WhepViewer>;
  /**
   * `n` viewers from one page, `parallel` at a time: each offers (audio for every third), gets media, then
   * DELETEs (even ones) or just closes its peer connection (odd ones). Rejects on the first failure.
   */
  cycles(url: string, n: number, parallel: number): Promise<void>;
  close(): Promise<void>;
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>whep</title></head><body>
<video id="v" muted autoplay playsinline></video>
<script>
const video = document.getElementById('v');
window.state = { firstFrameMs: null, answeredMs: null };
window.startWhep = async (url, audio, wantVideo) => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.pc = pc;
  if (wantVideo) pc.addTransceiver('video', { direction: 'recvonly' });
  if (audio) pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (e) => { stream.addTrack(e.track); video.srcObject = stream; video.play().catch(() => {}); };
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
      setTimeout(resolve, 5000);
    });
  }
  const t0 = performance.now();
  const onFrame = () => { if (window.state.firstFrameMs === null) window.state.firstFrameMs = performance.now() - t0; };
  video.requestVideoFrameCallback(onFrame);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp });
  const body = await res.text();
  const location = res.headers.get('location');
  window.location_ = location ? new URL(location, url).href : null;
  if (res.status === 201) {
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    window.state.answeredMs = performance.now() - t0;
  }
  return { status: res.status, location, body };
};
window.stamps = [];
window.readStamps = (bits, height) => {
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const onFrame = (_now, meta) => {
    const w = video.videoWidth;
    if (w > 0) {
      canvas.width = w;
      canvas.height = height;
      ctx.drawImage(video, 0, 0, w, height, 0, 0, w, height);
      const row = ctx.getImageData(0, Math.floor(height / 2), w, 1).data;
      const block = Math.floor(w / bits);
      let value = 0;
      for (let b = 0; b < bits; b++) if (row[(b * block + Math.floor(block / 2)) * 4] > 128) value += 2 ** b;
      window.stamps.push({ value, presentedAt: performance.timeOrigin + meta.expectedDisplayTime });
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
};
window.readStats = async () => {
  const out = { framesDecoded: 0, framesReceived: 0, keyFramesDecoded: 0, packetsReceived: 0, packetsLost: 0,
    nackCount: 0, pliCount: 0, freezeCount: 0, jitterBufferMs: null, audioPacketsReceived: 0, audioSamplesReceived: 0,
    connectionState: window.pc ? window.pc.connectionState : 'none', firstFrameMs: window.state.firstFrameMs,
    answeredMs: window.state.answeredMs };
  if (!window.pc) return out;
  const report = await window.pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') {
      out.framesDecoded = s.framesDecoded || 0;
      out.framesReceived = s.framesReceived || 0;
      out.keyFramesDecoded = s.keyFramesDecoded || 0;
      out.packetsReceived = s.packetsReceived || 0;
      out.packetsLost = s.packetsLost || 0;
      out.nackCount = s.nackCount || 0;
      out.pliCount = s.pliCount || 0;
      out.freezeCount = s.freezeCount || 0;
      out.jitterBufferMs = s.jitterBufferEmittedCount ? (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount : null;
    } else if (s.kind === 'audio') {
      out.audioPacketsReceived = s.packetsReceived || 0;
      out.audioSamplesReceived = s.totalSamplesReceived || 0;
    }
  });
  return out;
};
window.cycles = async (url, n, parallel) => {
  const one = async (i) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('video', { direction: 'recvonly' });
    if (i % 3 === 0) pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) => {
        pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
        setTimeout(resolve, 5000);
      });
    }
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp });
    const body = await res.text();
    if (res.status !== 201) { pc.close(); throw new Error('cycle ' + i + ': ' + res.status + ' ' + body); }
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    const deadline = Date.now() + 30000;
    for (;;) {
      let packets = 0;
      (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') packets = s.packetsReceived || 0; });
      if (packets > 0) break;
      if (Date.now() > deadline) { pc.close(); throw new Error('cycle ' + i + ': no media in 30 s (' + pc.connectionState + ')'); }
      await new Promise((r) => setTimeout(r, 20));
    }
    // Half say goodbye with a DELETE; the others just close their peer connection.
    if (i % 2 === 0) {
      const del = await fetch(new URL(res.headers.get('location'), url).href, { method: 'DELETE' });
      if (del.status !== 200) throw new Error('cycle ' + i + ': DELETE ' + del.status);
    }
    pc.close();
  };
  let next = 0;
  const worker = async () => { while (next < n) await one(next++); };
  await Promise.all(Array.from({ length: parallel }, worker));
  return n;
};
window.stopWhep = async (del) => {
  let status = null;
  if (del && window.location_) status = (await fetch(window.location_, { method: 'DELETE' })).status;
  if (window.pc) window.pc.close();
  return status;
};
</script></body></html>`;

async function startPageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    if ((req.url ?? '/') === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function launchWhepBrowser(): Promise<WhepBrowser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is missing (${CHROMIUM_PATH}); run "npm test", which installs it (Debian package chromium)`,
    );
  }
  const { server, origin } = await startPageServer();
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: WHEP_CHROMIUM_ARGS,
    });
  } catch (err) {
    server.close();
    throw err;
  }
  const contexts = new Set<BrowserContext>();
  return {
    async play(url, options = {}) {
      const context = await browser.newContext();
      contexts.add(context);
      const page: Page = await context.newPage();
      await page.goto(`${origin}/`, { waitUntil: 'load' });
      if (options.stamps) await page.evaluate(`readStamps(${options.stamps.bits}, ${options.stamps.height})`);
      const answer = (await page.evaluate(
        `startWhep(${JSON.stringify(url)}, ${options.audio ?? false}, ${options.video ?? true})`,
      )) as WhepAnswer;
      const stats = async (): Promise<WhepStats> => (await page.evaluate('readStats()')) as WhepStats;
      let closed = false;
      return {
        answer,
        stats,
        stamps: async () =>
          (await page.evaluate('window.stamps')) as { value: number; presentedAt: number }[],
        async waitFrames(n, timeoutMs) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const s = await stats();
            if (s.framesDecoded >= n) return s;
            if (Date.now() > deadline) {
              throw new Error(
                `only ${s.framesDecoded} of ${n} frames decoded in ${timeoutMs} ms: ${JSON.stringify(s)}`,
              );
            }
            await page.waitForTimeout(100); // polling getStats: the browser has no event for a decoded frame
          }
        },
        async close(closeOptions = {}) {
          if (closed) return null;
          closed = true;
          const status = (await page.evaluate(`stopWhep(${closeOptions.delete ?? true})`)) as number | null;
          contexts.delete(context);
          await context.close();
          return status;
        },
      };
    },
    async cycles(url, n, parallel) {
      const context = await browser.newContext();
      contexts.add(context);
      try {
        const page = await context.newPage();
        await page.goto(`${origin}/`, { waitUntil: 'load' });
        await page.evaluate(`cycles(${JSON.stringify(url)}, ${n}, ${parallel})`);
      } finally {
        contexts.delete(context);
        await context.close();
      }
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {}); // already gone with the browser is fine
      await browser.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
