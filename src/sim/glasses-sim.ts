/**
 * A simulated pair of glasses (`rtmp-relay glasses-sim`): connects to the cloud's glasses WebSocket as a
 * user, obeys `start_rtmp_stream` / `stop_rtmp_stream`, answers keep-alives, and publishes a dirty synthetic
 * stream (portrait 540x960, ~12 fps, AAC mono 44.1 kHz) with FFmpeg to the URL it was given. Like the real
 * glasses it retries a failed publish up to 10 times (1 s, then ×1.5, with jitter), counts a publish that
 * stalls (no progress from FFmpeg for `stallTimeoutMs`: the network stopped taking data, and no FIN came) as
 * failed, stops on an unknown stream id in a keep-alive, and stops by itself after 60 s without one. A cloud
 * connection that drops is opened again (with backoff; the publish goes on meanwhile), and the glasses then
 * repeat their current publish status, which the cloud may have missed.
 *
 * Two dialects: the seed's `start_rtmp_stream` family, or current firmware's `start_stream {streamUrl}`
 * (`commands: 'stream'`, announced to the cloud with `?commands=stream`), whose URL scheme picks RTMP, SRT
 * or WHIP (`http(s)://`: ./whip-publish.ts). Two ways to publish: FFmpeg encoding a synthetic stream (to
 * FLV on its stdout, published by the in-process RTMP client, so the token is in no argv; SRT goes out
 * through FFmpeg's libsrt), or `replay` of pre-encoded FLV tags in real time through the same client (no
 * encoder per pair of glasses, so twenty fit on a loaded test machine). A replayed publish that the network stops taking (more than half a second
 * of it unsent) counts as stalled, as a phone's socket write timeout would.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import WebSocket from 'ws';
import {
  type CloudToGlasses,
  CloudToGlasses as CloudToGlassesSchema,
  CloudToGlassesStream,
  type GlassesDialect,
  type GlassesToCloud,
} from '../contracts/mentra.ts';
import { FlvTagStream } from '../media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../media/flv-tag.ts';
import { RtmpPublisher } from '../rtmp/client.ts';
import type { Logger } from '../shared/logger.ts';
import { redactUrl } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { SimWhipPublish } from './whip-publish.ts';

export interface GlassesSimOptions {
  /** ws(s)://host:port of the cloud. */
  cloudUrl: string;
  userId: string;
  /** Bearer token for the glasses socket; dev mode accepts a plain `?userId=`. */
  token?: string;
  log: Logger;
  ffmpegPath?: string;
  /** Publish retries (default 10), first pause (1000 ms) and growth (1.5). */
  retries?: number;
  firstRetryMs?: number;
  retryFactor?: number;
  /** Stop streaming after this long without a keep-alive (default 60 s). */
  keepAliveTimeoutMs?: number;
  /** A publish with no FFmpeg progress for this long failed (a socket write timeout; default 10 s). */
  stallTimeoutMs?: number;
  /** Pauses before opening a dropped cloud connection again: first and most (default 500 ms, 5 s). */
  cloudRetryMs?: { first: number; max: number };
  /** Where a publish really goes, given the rtmpUrl the cloud sent (tests route it through a proxy). */
  publishUrl?: (rtmpUrl: string) => string;
  /** Which commands the glasses take (default `rtmp`, the seed's). */
  commands?: GlassesDialect;
  /** Publish these FLV tags (looped, in real time) instead of encoding with FFmpeg. */
  replay?: readonly MediaTag[];
}

/** Replay: bytes left unsent that count as a stalled network (about half a second of a 1 Mbit/s stream). */
const REPLAY_STALL_BYTES = 64 * 1024;
/**
 * The relay is asked to acknowledge every ACK_WINDOW bytes; more than UNACKED_STALL_BYTES sent and not
 * acknowledged (about 2 s of this stream) for the stall timeout is a network that stopped taking data with no
 * FIN, found long before the kernel's send buffer (megabytes over loopback) would fill.
 */
const ACK_WINDOW = 64 * 1024;
const UNACKED_STALL_BYTES = 256 * 1024;
const REPLAY_TICK_MS = 20;

export type GlassesSimEvents = {
  connected: [];
  message: [CloudToGlasses];
  status: [GlassesToCloud];
  closed: [];
};

interface Publishing {
  streamId: string;
  rtmpUrl: string;
  child: ChildProcess | null;
  /** The replayed publish, when replaying. */
  replay: { publisher: RtmpPublisher; timer: NodeJS.Timeout | null } | null;
  /** The WHIP publish, for an `http(s)://` stream URL (./whip-publish.ts). */
  whip: SimWhipPublish | null;
  attempt: number;
  retryTimer: NodeJS.Timeout | null;
  stopping: boolean;
  /** The last publish status sent, repeated after a cloud reconnect. */
  status: GlassesToCloud | null;
}

/** The close code the cloud uses when a newer connection of the same user replaced this one. */
const REPLACED = 4000;

/** FFmpeg argv for the synthetic dirty stream (frames dropped irregularly, keyframes every ~2 s). */
export function simPublishArgs(output: string): string[] {
  // FLV on stdout (the in-process publisher takes it from there): no progress reports on the same pipe.
  const toPipe = output === 'pipe:1';
  return [
    ...['-hide_banner', '-nostdin', '-loglevel', 'error'],
    ...(toPipe ? [] : ['-progress', 'pipe:1', '-stats_period', '0.5']),
    '-re',
    ...['-f', 'lavfi', '-i', 'testsrc2=size=540x960:rate=15'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'],
    // Drop about one frame in five, irregularly, as glasses do under load. The frames kept keep their own
    // times (variable frame rate, `-fps_mode vfr`: no duplicates fill the gaps): renumbering them
    // (setpts=N/FRAME_RATE/TB) made 16.4 s of media per 20 s of wall time, a media clock at 0.82x (issue 15).
    ...['-vf', "select='not(eq(mod(n\\,5)\\,3))+eq(mod(n\\,7)\\,0)'", '-fps_mode', 'vfr'],
    ...[
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-tune',
      'zerolatency',
      '-g',
      '30',
      '-pix_fmt',
      'yuv420p',
      '-b:v',
      '1M',
    ],
    ...['-c:a', 'aac', '-ac', '1', '-b:a', '64k'],
    // SRT (current firmware's managed streams): MPEG-TS over FFmpeg's libsrt, as StreamPack sends it.
    ...(/^srt:\/\//i.test(output)
      ? ['-f', 'mpegts', output]
      : [
          // A phone-sized socket send buffer (about half a second of this stream): over loopback the kernel
          // would otherwise buffer megabytes, and a publish whose network went silent would take half a minute
          // to stall.
          ...(/^rtmps?:\/\//i.test(output) ? ['-send_buffer_size', '65536'] : []),
          ...['-f', 'flv', output],
        ]),
  ];
}

export class GlassesSim extends TypedEmitter<GlassesSimEvents> {
  readonly #options: GlassesSimOptions;
  readonly #log: Logger;
  #ws: WebSocket | null = null;
  #publishing: Publishing | null = null;
  #keepAliveTimer: NodeJS.Timeout | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #reconnectPause = 0;
  /** True from a dropped cloud connection until a new one opens. */
  #reconnecting = false;
  #closed = false;
  /** False makes the glasses ignore keep-alives, as a hung phone would (for fault tests). */
  answerKeepAlives = true;

  constructor(options: GlassesSimOptions) {
    super();
    this.#options = options;
    this.#log = options.log.child({ component: 'glasses-sim', userId: options.userId });
  }

  get streaming(): boolean {
    const p = this.#publishing;
    return p?.child != null || p?.replay != null || p?.whip != null;
  }

  /** The FFmpeg that publishes now, if any (fault tests follow it). */
  get publisherPid(): number | null {
    return this.#publishing?.child?.pid ?? null;
  }

  /** Whether the cloud connection is open now. */
  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  /** Connects to the cloud; resolves when the socket is open. A connection that drops later is reopened. */
  async connect(): Promise<void> {
    const ws = this.#open();
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopPublishing('stopped');
    if (this.#keepAliveTimer) clearTimeout(this.#keepAliveTimer);
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#ws?.close();
  }

  #open(): WebSocket {
    const url = new URL('/glasses-ws', this.#options.cloudUrl);
    if (!this.#options.token) url.searchParams.set('userId', this.#options.userId);
    if (this.#options.commands === 'stream') url.searchParams.set('commands', 'stream');
    const headers: Record<string, string> = this.#options.token
      ? { authorization: `Bearer ${this.#options.token}` }
      : {};
    const ws = new WebSocket(url, { headers });
    this.#ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      this.#reconnectPause = 0;
      this.safeEmit('connected');
      // The cloud may have missed statuses while the connection was down: say where the publish stands.
      const status = this.#publishing?.status;
      if (this.#reconnecting && status) this.#send(status);
      this.#reconnecting = false;
    });
    ws.on('message', (data) => this.#onMessage(String(data)));
    ws.on('close', (code) => {
      if (this.#ws !== ws) return;
      if (opened) {
        this.#log.info({ code }, 'cloud connection closed');
        this.safeEmit('closed');
      }
      // The first connect reports its own failure to the caller; later drops are retried, unless a newer
      // connection of this user replaced this one (two would fight).
      if (this.#closed || (!opened && !this.#reconnecting) || code === REPLACED) return;
      this.#scheduleReconnect();
    });
    ws.on('error', (err) => this.#log.warn({ err: err.message }, 'cloud connection error'));
    return ws;
  }

  #scheduleReconnect(): void {
    const { first, max } = this.#options.cloudRetryMs ?? { first: 500, max: 5000 };
    this.#reconnectPause = Math.min(max, this.#reconnectPause ? this.#reconnectPause * 2 : first);
    this.#reconnecting = true;
    this.#log.info({ inMs: this.#reconnectPause }, 'reconnecting to the cloud');
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (!this.#closed) this.#open();
    }, this.#reconnectPause);
  }

  #send(message: GlassesToCloud): void {
    const p = this.#publishing;
    if (message.type === 'rtmp_stream_status' && p && p.streamId === message.streamId) p.status = message;
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
    this.safeEmit('status', message);
  }

  #onMessage(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.#log.warn('cloud sent something that is not JSON');
      return;
    }
    const message = this.#parseCommand(parsed);
    if (!message) {
      this.#log.debug({ type: (parsed as { type?: unknown })?.type }, 'ignored message');
      return;
    }
    this.safeEmit('message', message);
    switch (message.type) {
      case 'start_rtmp_stream':
        return this.#start(message.streamId, message.rtmpUrl);
      case 'stop_rtmp_stream':
        if (this.#publishing?.streamId === message.streamId) this.#stopPublishing('stopped');
        return;
      case 'keep_rtmp_stream_alive':
        if (this.#publishing?.streamId !== message.streamId) {
          this.#send({
            type: 'rtmp_stream_status',
            streamId: message.streamId,
            status: 'error',
            errorDetails: 'unknown stream',
          });
          this.#stopPublishing('error');
          return;
        }
        if (!this.answerKeepAlives) return;
        this.#send({
          type: 'keep_alive_ack',
          streamId: message.streamId,
          ackId: message.ackId,
          timestamp: Date.now(),
        });
        this.#armKeepAliveTimeout();
        return;
    }
  }

  /** A command in the glasses' dialect, in the seed's names (what the rest of the simulator handles). */
  #parseCommand(parsed: unknown): CloudToGlasses | null {
    if (this.#options.commands !== 'stream') {
      const seed = CloudToGlassesSchema.safeParse(parsed);
      return seed.success ? seed.data : null;
    }
    const current = CloudToGlassesStream.safeParse(parsed);
    if (!current.success) return null;
    const m = current.data;
    const now = Date.now();
    switch (m.type) {
      case 'start_stream':
        // RTMP; SRT through FFmpeg (the replay mode speaks RTMP only); WHIP (`http(s)://`) through FFmpeg's
        // RTP and node-datachannel. Anything else is refused as the firmware refuses what it cannot do.
        if (
          !/^rtmps?:\/\//i.test(m.streamUrl) &&
          !/^https?:\/\//i.test(m.streamUrl) &&
          !(/^srt:\/\//i.test(m.streamUrl) && !this.#options.replay)
        ) {
          this.#send({
            type: 'rtmp_stream_status',
            streamId: m.streamId,
            status: 'error',
            errorDetails: 'unsupported URL scheme',
          });
          return null;
        }
        return {
          type: 'start_rtmp_stream',
          sessionId: '',
          rtmpUrl: m.streamUrl,
          appId: 'MANAGED_STREAM',
          streamId: m.streamId,
          timestamp: now,
        };
      case 'stop_stream':
        return {
          type: 'stop_rtmp_stream',
          sessionId: '',
          appId: 'MANAGED_STREAM',
          streamId: m.streamId,
          timestamp: now,
        };
      case 'keep_stream_alive':
        return { type: 'keep_rtmp_stream_alive', streamId: m.streamId, ackId: m.ackId };
      case 'get_stream_status': {
        const status = this.#publishing?.status;
        if (status) this.#send(status);
        return null;
      }
    }
  }

  #start(streamId: string, rtmpUrl: string): void {
    // A start for the stream already publishing moves it (the cloud placed it on another relay): the old
    // publish ends without `stopped`, which the cloud would take as the glasses ending the managed stream.
    if (this.#publishing) this.#stopPublishing(this.#publishing.streamId === streamId ? 'moved' : 'stopped');
    this.#publishing = {
      streamId,
      rtmpUrl,
      child: null,
      replay: null,
      whip: null,
      attempt: 0,
      retryTimer: null,
      stopping: false,
      status: null,
    };
    this.#send({ type: 'rtmp_stream_status', streamId, status: 'initializing' });
    this.#armKeepAliveTimeout();
    this.#spawn();
  }

  #spawn(): void {
    const p = this.#publishing;
    if (!p || p.stopping) return;
    if (/^https?:\/\//i.test(p.rtmpUrl)) return this.#whip(p);
    if (this.#options.replay) return this.#replay(p, this.#options.replay);
    const url = this.#options.publishUrl?.(p.rtmpUrl) ?? p.rtmpUrl;
    if (/^rtmps?:\/\//i.test(url)) return this.#encode(p, url);
    // SRT: FFmpeg's libsrt publishes, so the stream id (token inside) is in its argv: there is no in-process
    // SRT caller. Real glasses have no argv; use RTMP or the replay mode where other users share the machine.
    this.#log.info({ url: redactUrl(url), attempt: p.attempt }, 'publishing');
    const child = spawn(this.#options.ffmpegPath ?? 'ffmpeg', simPublishArgs(url), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    p.child = child;
    let errors = '';
    // No FFmpeg to run (ENOENT): a failed publish (its 'close' follows), not an uncaught error.
    child.once('error', (err) => {
      errors = err.message;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (errors = (errors + d).slice(-500)));
    // FFmpeg reports progress every half second while the publish flows; when the network stops taking
    // data its writes block and the reports stop: after `stallTimeoutMs` the publish has failed, as a
    // phone's socket write timeout would say. The stuck FFmpeg is killed (the socket is abandoned).
    let stalled = false;
    let stallTimer: NodeJS.Timeout | null = null;
    const armStall = (): void => {
      if (stallTimer) clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        stalled = true;
        this.#log.warn({ streamId: p.streamId }, 'publish stalled: no progress from FFmpeg');
        if (child.pid) killGroup(child.pid, 'SIGKILL');
      }, this.#options.stallTimeoutMs ?? 10_000);
    };
    armStall();
    // Like the real glasses, report streaming (or reconnected) only once the publish really flows: FFmpeg's
    // first progress report comes after the RTMP connection and the first frames.
    let reported = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (!d.includes('progress=')) return;
      armStall();
      if (reported || this.#publishing !== p) return;
      reported = true;
      this.#send({
        type: 'rtmp_stream_status',
        streamId: p.streamId,
        status: p.attempt === 0 ? 'streaming' : 'reconnected',
      });
    });
    child.once('close', (code) => {
      if (stallTimer) clearTimeout(stallTimer);
      if (this.#publishing !== p) return;
      p.child = null;
      if (p.stopping) return;
      this.#retry(code, stalled ? 'publish stalled' : 'publish failed', errors);
    });
  }

  /**
   * RTMP with an encoder: FFmpeg encodes the dirty stream to FLV on its stdout and the in-process RTMP client
   * publishes it, so the publish URL and its token are in no process's argv. The network not taking the
   * stream (more than REPLAY_STALL_BYTES unsent) is a stall, as in the replay mode.
   */
  #encode(p: Publishing, url: string): void {
    this.#log.info({ url: redactUrl(url), attempt: p.attempt }, 'publishing (FFmpeg → in-process RTMP)');
    const publisher = new RtmpPublisher({ url, log: this.#log, ackWindow: ACK_WINDOW });
    const congested = congestionWatch(publisher, this.#options.stallTimeoutMs ?? 10_000);
    const replay: { publisher: RtmpPublisher; timer: NodeJS.Timeout | null } = { publisher, timer: null };
    p.replay = replay;
    let over = false;
    let stalled = false;
    let errors = '';
    const fail = (code: number | null, why: string): void => {
      if (over) return;
      over = true;
      if (p.child?.pid) killGroup(p.child.pid, 'SIGKILL');
      publisher.destroy();
      if (this.#publishing !== p || p.replay !== replay) return;
      p.replay = null;
      p.child = null;
      if (p.stopping) return;
      this.#retry(code, stalled ? 'publish stalled' : why, errors);
    };
    publisher.once('started', () => {
      if (over || this.#publishing !== p || p.replay !== replay) return;
      const child = spawn(this.#options.ffmpegPath ?? 'ffmpeg', simPublishArgs('pipe:1'), {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      p.child = child;
      // No FFmpeg to run (ENOENT): a failed publish (its 'close' follows), not an uncaught error.
      child.once('error', (err) => {
        errors = err.message;
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (errors = (errors + d).slice(-500)));
      const flv = new FlvTagStream();
      let reported = false;
      // FFmpeg producing nothing for `stallTimeoutMs` (stopped, stuck) is a failed publish too.
      let stallTimer: NodeJS.Timeout | null = null;
      const armStall = (): void => {
        if (stallTimer) clearTimeout(stallTimer);
        stallTimer = setTimeout(() => {
          stalled = true;
          this.#log.warn({ streamId: p.streamId }, 'publish stalled: no media from FFmpeg');
          fail(null, 'publish stalled');
        }, this.#options.stallTimeoutMs ?? 10_000);
      };
      armStall();
      child.once('close', () => {
        if (stallTimer) clearTimeout(stallTimer);
      });
      child.stdout!.on('data', (chunk: Buffer) => {
        if (over) return;
        let tags: MediaTag[];
        try {
          tags = flv.push(chunk);
        } catch (err) {
          errors = (err as Error).message;
          return fail(null, 'publish failed');
        }
        for (const tag of tags) publisher.send(tag);
        armStall();
        if (congested()) {
          stalled = true;
          this.#log.warn({ streamId: p.streamId }, 'publish stalled: the network stopped taking data');
          return fail(null, 'publish stalled');
        }
        // Like the real glasses, report streaming (or reconnected) once media really flows.
        if (!reported && tags.some((t) => !t.isConfig)) {
          reported = true;
          this.#send({
            type: 'rtmp_stream_status',
            streamId: p.streamId,
            status: p.attempt === 0 ? 'streaming' : 'reconnected',
          });
        }
      });
      child.once('close', (code) => fail(code, 'publish failed'));
    });
    publisher.once('closed', ({ error }) => {
      if (error) errors = error.message;
      fail(null, 'publish failed');
    });
    publisher.start();
  }

  /**
   * Publishes `tags` through the in-process RTMP client: configuration first, then the media looped for
   * as long as the publish lasts, each tag when its media time comes on the wall clock (a fresh publisher's
   * clock at every attempt, as the glasses' encoder restarts).
   */
  #replay(p: Publishing, tags: readonly MediaTag[]): void {
    const url = this.#options.publishUrl?.(p.rtmpUrl) ?? p.rtmpUrl;
    this.#log.info({ url: redactUrl(url), attempt: p.attempt }, 'publishing (replay)');
    const head = tags.filter((t) => t.isConfig || t.type === FlvTagType.Script);
    const media = tags.filter((t) => !t.isConfig && t.type !== FlvTagType.Script);
    const first = media[0]?.timestamp ?? 0;
    const span = media.length > 0 ? media.at(-1)!.timestamp - first + 70 : 1000;
    const publisher = new RtmpPublisher({ url, log: this.#log, ackWindow: ACK_WINDOW });
    const congested = congestionWatch(publisher, this.#options.stallTimeoutMs ?? 10_000);
    const replay: { publisher: RtmpPublisher; timer: NodeJS.Timeout | null } = { publisher, timer: null };
    p.replay = replay;
    let stalled = false;
    publisher.once('started', () => {
      if (this.#publishing !== p || p.replay !== replay) return;
      const startedAt = performance.now();
      for (const t of head) publisher.send(t, 0);
      let index = 0;
      let loop = 0;
      replay.timer = setInterval(() => {
        if (congested()) {
          stalled = true;
          this.#log.warn({ streamId: p.streamId }, 'publish stalled: the network stopped taking data');
          publisher.destroy();
          return;
        }
        const elapsed = performance.now() - startedAt;
        while (media.length > 0) {
          const tag = media[index]!;
          const at = tag.timestamp - first + loop * span;
          if (at > elapsed) break;
          publisher.send(tag, at);
          if (++index === media.length) {
            index = 0;
            loop++;
          }
        }
      }, REPLAY_TICK_MS);
      this.#send({
        type: 'rtmp_stream_status',
        streamId: p.streamId,
        status: p.attempt === 0 ? 'streaming' : 'reconnected',
      });
    });
    publisher.once('closed', ({ error }) => {
      if (replay.timer) clearInterval(replay.timer);
      if (this.#publishing !== p || p.replay !== replay) return;
      p.replay = null;
      if (p.stopping) return;
      this.#retry(null, stalled ? 'publish stalled' : 'publish failed', error?.message ?? '');
    });
    publisher.start();
  }

  /**
   * WHIP (current firmware, an `http(s)://` URL): FFmpeg's RTP through a node-datachannel peer connection.
   * A failed attempt has already DELETEd its session (the glasses DELETE before each retry).
   */
  #whip(p: Publishing): void {
    const url = this.#options.publishUrl?.(p.rtmpUrl) ?? p.rtmpUrl;
    const whip = new SimWhipPublish({
      url,
      log: this.#log,
      ...(this.#options.ffmpegPath ? { ffmpegPath: this.#options.ffmpegPath } : {}),
      ...(this.#options.stallTimeoutMs !== undefined ? { stallTimeoutMs: this.#options.stallTimeoutMs } : {}),
    });
    p.whip = whip;
    whip.once('flowing', () => {
      if (this.#publishing !== p || p.whip !== whip) return;
      this.#send({
        type: 'rtmp_stream_status',
        streamId: p.streamId,
        status: p.attempt === 0 ? 'streaming' : 'reconnected',
      });
    });
    whip.once('closed', ({ error }) => {
      if (this.#publishing !== p || p.whip !== whip) return;
      p.whip = null;
      if (p.stopping) return;
      this.#retry(null, 'publish failed', error?.message ?? '');
    });
    void whip.start();
  }

  #retry(code: number | null, reason: string, errors: string): void {
    const p = this.#publishing!;
    const retries = this.#options.retries ?? 10;
    if (p.attempt >= retries) {
      this.#send({
        type: 'rtmp_stream_status',
        streamId: p.streamId,
        status: 'error',
        errorDetails: 'publish failed',
      });
      this.#publishing = null;
      return;
    }
    p.attempt++;
    const first = this.#options.firstRetryMs ?? 1000;
    const pause = first * (this.#options.retryFactor ?? 1.5) ** (p.attempt - 1) * (0.8 + Math.random() * 0.4);
    this.#log.warn(
      { code, reason, attempt: p.attempt, ffmpeg: redactTokens(errors.trim().split('\n').at(-1) ?? '') },
      'publish failed, retrying',
    );
    this.#send({
      type: 'rtmp_stream_status',
      streamId: p.streamId,
      status: 'reconnecting',
      attempt: p.attempt,
      maxAttempts: retries,
      reason,
    });
    p.retryTimer = setTimeout(() => this.#spawn(), pause);
  }

  #stopPublishing(status: 'stopped' | 'error' | 'moved'): void {
    const p = this.#publishing;
    if (!p) return;
    this.#publishing = null;
    p.stopping = true;
    if (p.retryTimer) clearTimeout(p.retryTimer);
    if (p.child?.pid) killGroup(p.child.pid, 'SIGTERM');
    if (p.whip) {
      void p.whip.close();
      p.whip = null;
    }
    if (p.replay) {
      if (p.replay.timer) clearInterval(p.replay.timer);
      p.replay.publisher.close();
      p.replay = null;
    }
    if (status === 'stopped')
      this.#send({ type: 'rtmp_stream_status', streamId: p.streamId, status: 'stopped' });
  }

  #armKeepAliveTimeout(): void {
    if (this.#keepAliveTimer) clearTimeout(this.#keepAliveTimer);
    this.#keepAliveTimer = setTimeout(() => {
      this.#log.warn('no keep-alive from the cloud: stopping, as the real glasses do');
      this.#stopPublishing('stopped');
    }, this.#options.keepAliveTimeoutMs ?? 60_000);
  }
}

/**
 * Whether a publish has stalled: unsent bytes piling up in the socket, or the relay leaving more than
 * UNACKED_STALL_BYTES unacknowledged for `forMs` (the network stopped taking data with no FIN: a phone's write
 * timeout).
 */
function congestionWatch(publisher: RtmpPublisher, forMs: number): () => boolean {
  let since: number | null = null;
  return () => {
    if (publisher.writableLength > REPLAY_STALL_BYTES) return true;
    if (publisher.unacknowledgedBytes <= UNACKED_STALL_BYTES) {
      since = null;
      return false;
    }
    since ??= performance.now();
    return performance.now() - since >= forMs;
  };
}

/** FFmpeg's messages may quote the publish URL: its token (and any JWT-shaped text) never reaches a log. */
export function redactTokens(text: string): string {
  return redactUrl(text).replace(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[redacted]');
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
