/**
 * The glasses simulator's WHIP publish (current firmware's `start_stream` with an `http(s)://` URL), shaped
 * like the glasses' WhipStreamingService: send-only H.264 + Opus, ICE gathered completely before one POST
 * (non-trickle), no ICE servers, the token in the URL and no auth header, a DELETE on the Location when it
 * stops or before it retries.
 *
 * Media: FFmpeg encodes the simulator's synthetic dirty picture (854x480 at ~12 fps, frames dropped
 * irregularly, a keyframe every 2 s) as constrained-baseline H.264 with in-band SPS/PPS, and a tone as Opus,
 * and sends each as RTP to a loopback UDP socket of ours; the packets go into the node-datachannel tracks
 * unchanged (libdatachannel encrypts them; an RtcpNackResponder answers the relay's NACKs from its packet
 * history). Why this way: Debian 12 has no GStreamer WHIP sink and FFmpeg 5.1 no WHIP muxer, and FFmpeg's own
 * RTP packetizer spares a depacketize-and-packetize round in Node. The relay's PLIs cannot reach FFmpeg; the
 * fixed 2 s GOP stands in for them.
 *
 * Events: `flowing` once media goes out after the answer; `closed` once, with the error when it failed (the
 * POST refused, the peer connection failed, or no RTP from FFmpeg for `stallTimeoutMs`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { Audio, PeerConnection, RtcpNackResponder, type Track, Video } from 'node-datachannel';
import type { Logger } from '../shared/logger.ts';
import { redactUrl } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';

const VIDEO_PT = 96;
const AUDIO_PT = 111;
const NACK_HISTORY = 512;
const GATHER_TIMEOUT_MS = 5_000;
const POST_TIMEOUT_MS = 10_000;

export type SimWhipEvents = {
  flowing: [];
  closed: [{ error: Error | null }];
};

export interface SimWhipOptions {
  /** The WHIP URL with its `?token=`. */
  url: string;
  log: Logger;
  ffmpegPath?: string;
  /** No RTP from FFmpeg for this long: the publish failed (default 10 s). */
  stallTimeoutMs?: number;
  /** More FFmpeg video filters after the dirty ones (a benchmark draws frame numbers). */
  videoFilter?: string;
  /** Drop frames irregularly as the glasses do (default true; a latency benchmark wants a steady clock). */
  dirty?: boolean;
  /** Sees each RTP packet as it goes out (a benchmark notes when each frame left). */
  onRtp?: (kind: 'video' | 'audio', packet: Buffer) => void;
}

/** FFmpeg argv: the dirty picture as H.264 RTP to `videoPort`, a tone as Opus RTP to `audioPort`. */
export function simWhipArgs(
  videoPort: number,
  audioPort: number,
  videoSsrc: number,
  audioSsrc: number,
  videoFilter?: string,
  dropFrames = true,
): string[] {
  const drop = "select='not(eq(mod(n\\,5)\\,3))+eq(mod(n\\,7)\\,0)',setpts=N/FRAME_RATE/TB";
  return [
    ...['-hide_banner', '-nostdin', '-loglevel', 'error', '-re'],
    ...['-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=15'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
    // Drop about one frame in five, irregularly, as glasses do under load.
    ...['-vf', [...(dropFrames ? [drop] : []), ...(videoFilter ? [videoFilter] : [])].join(',') || 'null'],
    ...['-map', '0:v', '-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'veryfast'],
    ...['-tune', 'zerolatency', '-g', '24', '-bf', '0', '-pix_fmt', 'yuv420p', '-b:v', '1M'],
    // SPS and PPS in front of every keyframe: WebRTC receivers take them in-band.
    ...['-bsf:v', 'dump_extra'],
    ...['-f', 'rtp', '-payload_type', String(VIDEO_PT), '-ssrc', String(videoSsrc)],
    `rtp://127.0.0.1:${videoPort}?pkt_size=1200`,
    ...['-map', '1:a', '-c:a', 'libopus', '-ac', '2', '-b:a', '48k', '-frame_duration', '20'],
    ...['-f', 'rtp', '-payload_type', String(AUDIO_PT), '-ssrc', String(audioSsrc)],
    `rtp://127.0.0.1:${audioPort}?pkt_size=1200`,
  ];
}

async function bindLoopback(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

export class SimWhipPublish extends TypedEmitter<SimWhipEvents> {
  readonly #options: SimWhipOptions;
  readonly #log: Logger;
  #pc: PeerConnection | null = null;
  #tracks: Track[] = [];
  #sockets: dgram.Socket[] = [];
  #child: ChildProcess | null = null;
  #location: string | null = null;
  #stallTimer: NodeJS.Timeout | null = null;
  #flowing = false;
  #closed = false;

  constructor(options: SimWhipOptions) {
    super();
    this.#options = options;
    this.#log = options.log;
  }

  /** Negotiates and starts the media; failures end in `closed` with the error (never a rejection). */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.close(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async #start(): Promise<void> {
    // FFmpeg's RTP muxer takes an SSRC below 2^31 only.
    const videoSsrc = randomBytes(4).readUInt32BE(0) >>> 1;
    const audioSsrc = randomBytes(4).readUInt32BE(0) >>> 1;
    const pc = new PeerConnection('glasses-whip', { iceServers: [] });
    this.#pc = pc;
    pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') void this.close(new Error(`peer connection ${state}`));
    });
    const video = new Video('0', 'SendOnly');
    video.addH264Codec(VIDEO_PT, 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1');
    video.addSSRC(videoSsrc, 'glasses', 'glasses', 'glasses-video');
    const audio = new Audio('1', 'SendOnly');
    audio.addOpusCodec(AUDIO_PT, 'minptime=10;useinbandfec=1');
    audio.addSSRC(audioSsrc, 'glasses', 'glasses', 'glasses-audio');
    for (const media of [video, audio]) {
      const track = pc.addTrack(media);
      track.setMediaHandler(new RtcpNackResponder(NACK_HISTORY));
      track.onClosed(() => {}); // node-datachannel forgets a track only once its close is reported
      this.#tracks.push(track);
    }
    const offer = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('ICE gathering did not complete')), GATHER_TIMEOUT_MS);
      pc.onGatheringStateChange((s) => {
        if (s !== 'complete') return;
        clearTimeout(timer);
        resolve(pc.localDescription()!.sdp);
      });
      pc.setLocalDescription();
    });
    if (this.#closed) return;
    const { url } = this.#options;
    this.#log.info({ url: redactUrl(url) }, 'publishing (WHIP)');
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: offer,
      signal: AbortSignal.timeout(POST_TIMEOUT_MS),
    });
    const body = await res.text();
    if (res.status !== 201) throw new Error(`WHIP POST answered ${res.status}: ${body.trim().slice(0, 200)}`);
    const location = res.headers.get('location');
    if (location) this.#location = new URL(location, url).href;
    if (this.#closed) return;
    pc.setRemoteDescription(body, 'answer');

    // FFmpeg's RTP into the tracks, as it comes.
    const [videoSocket, audioSocket] = await Promise.all([bindLoopback(), bindLoopback()]);
    this.#sockets = [videoSocket!, audioSocket!];
    if (this.#closed) return this.#release();
    const forward = (track: Track, kind: 'video' | 'audio') => (msg: Buffer) => {
      this.#armStall();
      this.#options.onRtp?.(kind, msg);
      try {
        if (!track.isOpen()) return; // DTLS not done yet: the first packets go nowhere, as on the glasses
        track.sendMessageBinary(msg);
      } catch (err) {
        this.#log.debug({ err }, 'WHIP: RTP not sent');
        return;
      }
      if (!this.#flowing) {
        this.#flowing = true;
        this.safeEmit('flowing');
      }
    };
    videoSocket!.on('message', forward(this.#tracks[0]!, 'video'));
    audioSocket!.on('message', forward(this.#tracks[1]!, 'audio'));
    const args = simWhipArgs(
      videoSocket!.address().port,
      audioSocket!.address().port,
      videoSsrc,
      audioSsrc,
      this.#options.videoFilter,
      this.#options.dirty ?? true,
    );
    const child = spawn(this.#options.ffmpegPath ?? 'ffmpeg', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    this.#child = child;
    let errors = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (errors = (errors + d).slice(-500)));
    child.once('error', (err) => void this.close(err));
    child.once('close', (code) => {
      this.#child = null;
      void this.close(new Error(`FFmpeg exited (${code}): ${errors.trim().split('\n').at(-1) ?? ''}`));
    });
    this.#armStall();
  }

  #armStall(): void {
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = setTimeout(
      () => void this.close(new Error('publish stalled: no media from the encoder')),
      this.#options.stallTimeoutMs ?? 10_000,
    );
  }

  /** DELETE on the Location (as the glasses do before a retry and on stop), then release everything. */
  async close(error: Error | null = null): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#release();
    const location = this.#location;
    this.#location = null;
    if (location) {
      try {
        await fetch(location, { method: 'DELETE', signal: AbortSignal.timeout(POST_TIMEOUT_MS) });
      } catch (err) {
        // The relay may be gone (that is often why we stop); the session times out there by itself.
        this.#log.debug({ err }, 'WHIP DELETE failed');
      }
    }
    this.safeEmit('closed', { error });
  }

  #release(): void {
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
    if (this.#child?.pid) {
      try {
        process.kill(-this.#child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const s of this.#sockets) s.close();
    this.#sockets = [];
    try {
      for (const t of this.#tracks) t.close();
      this.#pc?.close();
    } catch (err) {
      // A failed native connection may throw on close; it is released either way.
      this.#log.debug({ err }, 'WHIP peer close threw');
    }
    this.#tracks = [];
    this.#pc = null;
  }
}
