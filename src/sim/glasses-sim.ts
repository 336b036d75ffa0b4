/**
 * A simulated pair of glasses (`rtmp-relay glasses-sim`): connects to the cloud's glasses WebSocket as a
 * user, obeys `start_rtmp_stream` / `stop_rtmp_stream`, answers keep-alives, and publishes a dirty synthetic
 * stream (portrait 540x960, ~12 fps, AAC mono 44.1 kHz) with FFmpeg to the URL it was given. Like the real
 * glasses it retries a failed publish up to 10 times (1 s, then ×1.5, with jitter), stops on an unknown
 * stream id in a keep-alive, and stops by itself after 60 s without one.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import WebSocket from 'ws';
import {
  type CloudToGlasses,
  CloudToGlasses as CloudToGlassesSchema,
  type GlassesToCloud,
} from '../contracts/mentra.ts';
import type { Logger } from '../shared/logger.ts';
import { redactUrl } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';

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
}

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
  attempt: number;
  retryTimer: NodeJS.Timeout | null;
  stopping: boolean;
}

/** FFmpeg argv for the synthetic dirty stream (frames dropped irregularly, keyframes every ~2 s). */
export function simPublishArgs(rtmpUrl: string): string[] {
  return [
    ...[
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'error',
      '-progress',
      'pipe:1',
      '-stats_period',
      '0.5',
      '-re',
    ],
    ...['-f', 'lavfi', '-i', 'testsrc2=size=540x960:rate=15'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'],
    // Drop about one frame in five, irregularly, as glasses do under load.
    ...['-vf', "select='not(eq(mod(n\\,5)\\,3))+eq(mod(n\\,7)\\,0)',setpts=N/FRAME_RATE/TB"],
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
    ...['-f', 'flv', rtmpUrl],
  ];
}

export class GlassesSim extends TypedEmitter<GlassesSimEvents> {
  readonly #options: GlassesSimOptions;
  readonly #log: Logger;
  #ws: WebSocket | null = null;
  #publishing: Publishing | null = null;
  #keepAliveTimer: NodeJS.Timeout | null = null;
  #closed = false;
  /** False makes the glasses ignore keep-alives, as a hung phone would (for fault tests). */
  answerKeepAlives = true;

  constructor(options: GlassesSimOptions) {
    super();
    this.#options = options;
    this.#log = options.log.child({ component: 'glasses-sim', userId: options.userId });
  }

  get streaming(): boolean {
    return this.#publishing?.child != null;
  }

  /** Connects to the cloud; resolves when the socket is open. */
  async connect(): Promise<void> {
    const url = new URL('/glasses-ws', this.#options.cloudUrl);
    if (!this.#options.token) url.searchParams.set('userId', this.#options.userId);
    const headers: Record<string, string> = this.#options.token
      ? { authorization: `Bearer ${this.#options.token}` }
      : {};
    const ws = new WebSocket(url, { headers });
    this.#ws = ws;
    ws.on('message', (data) => this.#onMessage(String(data)));
    ws.on('close', () => {
      this.#log.info('cloud connection closed');
      this.safeEmit('closed');
    });
    ws.on('error', (err) => this.#log.warn({ err: err.message }, 'cloud connection error'));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.safeEmit('connected');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopPublishing('stopped');
    if (this.#keepAliveTimer) clearTimeout(this.#keepAliveTimer);
    this.#ws?.close();
  }

  #send(message: GlassesToCloud): void {
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
    const result = CloudToGlassesSchema.safeParse(parsed);
    if (!result.success) {
      this.#log.debug({ type: (parsed as { type?: unknown })?.type }, 'ignored message');
      return;
    }
    const message = result.data;
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

  #start(streamId: string, rtmpUrl: string): void {
    // A start for the stream already publishing moves it (the cloud placed it on another relay): the old
    // publish ends without `stopped`, which the cloud would take as the glasses ending the managed stream.
    if (this.#publishing) this.#stopPublishing(this.#publishing.streamId === streamId ? 'moved' : 'stopped');
    this.#publishing = { streamId, rtmpUrl, child: null, attempt: 0, retryTimer: null, stopping: false };
    this.#send({ type: 'rtmp_stream_status', streamId, status: 'initializing' });
    this.#armKeepAliveTimeout();
    this.#spawn();
  }

  #spawn(): void {
    const p = this.#publishing;
    if (!p || p.stopping) return;
    this.#log.info({ url: redactUrl(p.rtmpUrl), attempt: p.attempt }, 'publishing');
    const child = spawn(this.#options.ffmpegPath ?? 'ffmpeg', simPublishArgs(p.rtmpUrl), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    p.child = child;
    let errors = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (errors = (errors + d).slice(-500)));
    // Like the real glasses, report streaming (or reconnected) only once the publish really flows: FFmpeg's
    // first progress report comes after the RTMP connection and the first frames.
    let reported = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (reported || !d.includes('progress=') || this.#publishing !== p) return;
      reported = true;
      this.#send({
        type: 'rtmp_stream_status',
        streamId: p.streamId,
        status: p.attempt === 0 ? 'streaming' : 'reconnected',
      });
    });
    child.once('close', (code) => {
      if (this.#publishing !== p) return;
      p.child = null;
      if (p.stopping) return;
      this.#retry(code, errors);
    });
  }

  #retry(code: number | null, errors: string): void {
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
      { code, attempt: p.attempt, ffmpeg: errors.trim().split('\n').at(-1) },
      'publish failed, retrying',
    );
    this.#send({
      type: 'rtmp_stream_status',
      streamId: p.streamId,
      status: 'reconnecting',
      attempt: p.attempt,
      maxAttempts: retries,
      reason: 'publish failed',
    });
    p.retryTimer = setTimeout(() => this.#spawn(), pause);
  }

  #stopPublishing(status: 'stopped' | 'error' | 'moved'): void {
    const p = this.#publishing;
    if (!p) return;
    this.#publishing = null;
    p.stopping = true;
    if (p.retryTimer) clearTimeout(p.retryTimer);
    if (p.child?.pid) {
      try {
        process.kill(-p.child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
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
