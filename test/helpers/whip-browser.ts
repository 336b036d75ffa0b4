/**
 * Debian's Chromium (/usr/bin/chromium, playwright-core; see ./browser.ts) as a WHIP publisher the way the
 * glasses publish: its fake camera and microphone (`--use-fake-device-for-media-stream
 * --use-fake-ui-for-media-stream`), send-only H.264 (preferred over VP8) + Opus, ICE gathered completely
 * before one POST (non-trickle), no ICE servers; `republish()` DELETEs and POSTs again as the glasses' retry
 * does. The video track's contentHint is 'detail' (libwebrtc keeps the resolution and lowers quality or
 * frame rate under a low bandwidth estimate, as the glasses' fixed 854x480 does). The test reads what the publisher saw from RTCPeerConnection.getStats(): the NACKs, PLIs and FIRs it
 * received, and our receiver reports (remote-inbound-rtp: loss, jitter, round-trip time).
 *
 * The page is served by a small loopback server (a secure context, so getUserMedia exists); the WHIP URL is
 * cross-origin, so the relay's CORS headers (and `Location` exposed) are exercised too.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './browser.ts';

export const WHIP_CHROMIUM_ARGS = [
  ...CHROMIUM_ARGS,
  '--allow-loopback-in-peer-connection',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--mute-audio',
];

export interface WhipPostResult {
  status: number;
  location: string | null;
  body: string;
}

export interface WhipPublisherStats {
  connectionState: string;
  framesEncoded: number;
  keyFramesEncoded: number;
  packetsSent: number;
  retransmittedPacketsSent: number;
  nackCount: number;
  pliCount: number;
  firCount: number;
  codec: string | null;
  /** From our receiver reports (remote-inbound-rtp), null before one arrived. */
  remote: { packetsLost: number; fractionLost: number; jitter: number; roundTripTime: number | null } | null;
}

export interface WhipPublisher {
  /** The first POST's answer. */
  post: WhipPostResult;
  stats(): Promise<WhipPublisherStats>;
  /** DELETE on the Location, a new peer connection with the same tracks, POST again (the glasses' retry). */
  republish(url: string): Promise<WhipPostResult>;
  /** DELETE (unless `delete` is false), then close the peer connection; the DELETE's status. */
  close(options?: { delete?: boolean }): Promise<number | null>;
}

export interface WhipBrowser {
  /** Opens a page, captures the fake camera and POSTs its offer to `url`. */
  publish(
    url: string,
    options?: {
      width?: number;
      height?: number;
      fps?: number;
      audio?: boolean;
      bearer?: string;
      /** Leave our ICE candidates out of the offer, so every datagram goes where the answer points. */
      hideCandidates?: boolean;
    },
  ): Promise<WhipPublisher>;
  close(): Promise<void>;
}

const PAGE = `<!doctype html><html><body><script>
let media = null, pc = null, location_ = null, bearer = null, hideCandidates = false;
async function connect(url) {
  pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of media.getTracks()) {
    const t = pc.addTransceiver(track, { direction: 'sendonly' });
    if (track.kind === 'video') {
      const codecs = RTCRtpSender.getCapabilities('video').codecs;
      t.setCodecPreferences([
        ...codecs.filter((c) => c.mimeType === 'video/H264'),
        ...codecs.filter((c) => c.mimeType !== 'video/H264'),
      ]);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((r) => {
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') r(); });
      setTimeout(r, 5000);
    });
  }
  const headers = { 'content-type': 'application/sdp' };
  if (bearer) headers.authorization = 'Bearer ' + bearer;
  let sdp = pc.localDescription.sdp;
  // Without our candidates the relay learns our address from the checks we send it (peer-reflexive):
  // every datagram then goes through whatever the answer's candidate points at (a loss proxy).
  if (hideCandidates) sdp = sdp.split('\\r\\n').filter((l) => !l.startsWith('a=candidate:')).join('\\r\\n');
  const res = await fetch(url, { method: 'POST', headers, body: sdp });
  const body = await res.text();
  const loc = res.headers.get('location');
  if (res.status === 201) {
    location_ = new URL(loc, url).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
  }
  return { status: res.status, location: loc, body: res.status === 201 ? '' : body };
}
window.startWhip = async (url, w, h, fps, audio, token, hide) => {
  bearer = token;
  hideCandidates = hide;
  media = await navigator.mediaDevices.getUserMedia({ video: { width: w, height: h, frameRate: fps }, audio });
  // Keep the picture size while the bandwidth estimate ramps up (libwebrtc's default downscales at first):
  // the glasses send a fixed 854x480, and every size change is a new init and a discontinuity in HLS.
  for (const t of media.getVideoTracks()) t.contentHint = 'detail';
  return connect(url);
};
async function del() {
  if (!location_) return null;
  const res = await fetch(location_, { method: 'DELETE' });
  location_ = null;
  return res.status;
}
window.republish = async (url) => {
  await del();
  pc.close();
  return connect(url);
};
window.stopWhip = async (doDelete) => {
  const status = doDelete ? await del() : null;
  if (pc) pc.close();
  for (const t of media ? media.getTracks() : []) t.stop();
  return status;
};
window.readStats = async () => {
  const out = { connectionState: pc ? pc.connectionState : 'none', framesEncoded: 0, keyFramesEncoded: 0,
    packetsSent: 0, retransmittedPacketsSent: 0, nackCount: 0, pliCount: 0, firCount: 0, codec: null, remote: null };
  if (!pc) return out;
  const report = await pc.getStats();
  const codecs = new Map();
  report.forEach((s) => { if (s.type === 'codec') codecs.set(s.id, s.mimeType); });
  report.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.framesEncoded += s.framesEncoded || 0;
      out.keyFramesEncoded += s.keyFramesEncoded || 0;
      out.packetsSent += s.packetsSent || 0;
      out.retransmittedPacketsSent += s.retransmittedPacketsSent || 0;
      out.nackCount += s.nackCount || 0;
      out.pliCount += s.pliCount || 0;
      out.firCount += s.firCount || 0;
      if (s.codecId) out.codec = codecs.get(s.codecId) || null;
    }
    if (s.type === 'remote-inbound-rtp' && s.kind === 'video') {
      out.remote = { packetsLost: s.packetsLost || 0, fractionLost: s.fractionLost || 0, jitter: s.jitter || 0,
        roundTripTime: s.roundTripTime === undefined ? null : s.roundTripTime };
    }
  });
  return out;
};
</script></body></html>`;

async function startPageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function launchWhipBrowser(): Promise<WhipBrowser> {
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
      args: WHIP_CHROMIUM_ARGS,
    });
  } catch (err) {
    server.close();
    throw err;
  }
  const contexts = new Set<BrowserContext>();
  return {
    async publish(url, options = {}) {
      const context = await browser.newContext();
      contexts.add(context);
      const page: Page = await context.newPage();
      await page.goto(`${origin}/`, { waitUntil: 'load' });
      const args = [
        url,
        options.width ?? 640,
        options.height ?? 480,
        options.fps ?? 15,
        options.audio ?? true,
        options.bearer ?? null,
        options.hideCandidates ?? false,
      ];
      const post = (await page.evaluate(
        `startWhip(${args.map((a) => JSON.stringify(a)).join(', ')})`,
      )) as WhipPostResult;
      let closed = false;
      return {
        post,
        stats: async () => (await page.evaluate('readStats()')) as WhipPublisherStats,
        republish: async (next) =>
          (await page.evaluate(`republish(${JSON.stringify(next)})`)) as WhipPostResult,
        async close(closeOptions = {}) {
          if (closed) return null;
          closed = true;
          const status = (await page.evaluate(`stopWhip(${closeOptions.delete ?? true})`)) as number | null;
          contexts.delete(context);
          await context.close();
          return status;
        },
      };
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {}); // the browser closes them anyway
      contexts.clear();
      await browser.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
