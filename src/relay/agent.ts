/**
 * The relay's side of the cloud contract: it registers, heartbeats every `heartbeatMs` with its streams, and
 * reports stream-started, hls-ready and stream-ended. A heartbeat answered "unknown relay" (the cloud lost
 * its state, or the first register failed) registers again. Stream events go through a bounded queue, in
 * order, each with an idempotency key, retried with backoff while the cloud is away (the oldest dropped and
 * counted past `maxQueue`); nothing here ever blocks media. One heartbeat at a time: a tick that finds the
 * previous one still waiting on a slow or frozen cloud is skipped, so calls never pile up. The heartbeat's
 * answer may list streams the cloud wants ended now (their managed stream stopped or moved): each goes to
 * `endStream`, so the relay writes ENDLIST and frees the load at once instead of after the reconnect window.
 */
import { hlsUserPath } from '../contracts/names.ts';
import {
  DestinationsResponse,
  type HeartbeatRequest,
  HeartbeatResponse,
  type HlsReadyRequest,
  type RecordingReadyRequest,
  type RegisterRequest,
  RelayApiPaths,
  type RestreamStatusRequest,
  type StreamEventRequest,
} from '../contracts/relay-api.ts';
import { dashMpdUrl } from '../contracts/urls.ts';
import type { RestreamOutput } from '../restream/manager.ts';
import type { Logger } from '../shared/logger.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import type { Restreaming } from './restreaming.ts';
import { streamStats } from './stream-stats.ts';
import type { ViewerTracker } from './viewers.ts';

export interface RelayAgentOptions {
  cloudUrl: string;
  secret: string;
  relay: RegisterRequest;
  heartbeatMs: number;
  streams: StreamRegistry;
  log: Logger;
  /** Per-request timeout (default 5 s). */
  timeoutMs?: number;
  /** Most stream events held while the cloud is unreachable (default 1000). */
  maxQueue?: number;
  /** Whether the relay drains (reported in heartbeats). */
  draining?: () => boolean;
  /** Retry pauses for queued events: first, and the most (default 500 ms, 10 s; doubling). */
  retryMs?: { first: number; max: number };
  /** Viewers per stream (heartbeat stats). */
  viewers?: ViewerTracker;
  /** Re-streaming: destinations asked from the cloud at each stream's start and each heartbeat. */
  restreaming?: Restreaming;
  /** Ends a stream now because the cloud said so (its managed stream stopped, or moved elsewhere). */
  endStream?: (userId: string, streamId: string) => void;
  /** The relay serves WHEP on its origin: hls-ready carries the stream's `webrtcUrl`. */
  whep?: boolean;
}

interface QueuedEvent {
  path: string;
  body: unknown;
  key: string;
}

export class RelayAgent {
  readonly #options: RelayAgentOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | null = null;
  #registered = false;
  #closed = false;
  readonly #detach: (() => void)[] = [];
  /** Calls sent and failed, events dropped from a full queue: for tests and metrics. */
  readonly stats = { sent: 0, failed: 0, dropped: 0 };
  readonly #queue: QueuedEvent[] = [];
  #sending = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #retryPause = 0;
  #nextKey = 0;
  /** The heartbeat (or register) in flight, if any. */
  #beating: Promise<void> | null = null;
  /** The destinations round in flight, if any. */
  #refreshing: Promise<unknown> | null = null;
  /** Process CPU at the previous heartbeat, for the share used since. */
  #cpuMark = { usage: process.cpuUsage(), at: performance.now() };

  constructor(options: RelayAgentOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: 'agent' });
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** Registers (once; a failure is retried by the heartbeat loop) and starts heartbeating. */
  async start(): Promise<void> {
    const { streams } = this.#options;
    const onCreated = (stream: { key: string; userId: string; streamId: string }): void => {
      this.#event(RelayApiPaths.streamStarted, stream);
      void this.#destinations(stream);
    };
    const onReady = (stream: { userId: string; streamId: string }): void => {
      const body: HlsReadyRequest = {
        userId: stream.userId,
        streamId: stream.streamId,
        hlsUrl: `${this.#options.relay.hlsUrl}/hls/${hlsUserPath(stream.userId)}/${stream.streamId}/index.m3u8`,
        dashUrl: dashMpdUrl(this.#options.relay.hlsUrl, stream.userId, stream.streamId),
        // WHEP on the same origin (architecture §3); the cloud hands it to apps as is (never via an HLS CDN).
        ...(this.#options.whep
          ? {
              webrtcUrl: `${this.#options.relay.hlsUrl}/whep/${hlsUserPath(stream.userId)}/${stream.streamId}`,
            }
          : {}),
        relayId: this.#options.relay.relayId,
      };
      this.#enqueue(RelayApiPaths.hlsReady, body);
    };
    // A refused publish (an input the relay cannot use) says why: the cloud ends it in error for the apps.
    const onEnded = (stream: { userId: string; streamId: string; failure?: string | null }): void =>
      this.#event(RelayApiPaths.streamEnded, stream, stream.failure ?? undefined);
    streams.on('created', onCreated);
    streams.on('ready', onReady);
    streams.on('ended', onEnded);
    const restreaming = this.#options.restreaming;
    if (restreaming) {
      const onOutputs = (stream: { userId: string; streamId: string }, outputs: RestreamOutput[]): void => {
        const body: RestreamStatusRequest = { relayId: this.#options.relay.relayId, ...stream, outputs };
        this.#enqueue(RelayApiPaths.restreamStatus, body);
      };
      restreaming.on('outputs', onOutputs);
      this.#detach.push(() => restreaming.off('outputs', onOutputs));
    }
    this.#detach.push(
      () => streams.off('created', onCreated),
      () => streams.off('ready', onReady),
      () => streams.off('ended', onEnded),
    );
    await this.#register();
    this.#timer = setInterval(() => void this.#beat(), this.#options.heartbeatMs);
  }

  /** Sends a heartbeat now (a drain starting, for instance), after the one in flight if any. */
  async heartbeatNow(): Promise<void> {
    await this.#beating;
    await this.#beat();
  }

  /** A heartbeat, unless one is in flight (then that one). */
  #beat(): Promise<void> {
    if (this.#beating) return this.#beating;
    const beat = this.#heartbeat().finally(() => {
      if (this.#beating === beat) this.#beating = null;
    });
    this.#beating = beat;
    return beat;
  }

  /** Waits until the queued events are sent, or `timeoutMs` passes (nothing unsent if the cloud answers). */
  async flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length > 0 && Date.now() < deadline && !this.#closed) {
      if (this.#retryTimer) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = null;
      }
      await this.#drain();
      if (this.#queue.length > 0)
        await new Promise<void>((r) => setTimeout(r, Math.min(200, deadline - Date.now())));
    }
  }

  /** Stops heartbeating and deregisters (best effort). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const undo of this.#detach) undo();
    if (this.#registered)
      await this.#post(RelayApiPaths.deregister, { relayId: this.#options.relay.relayId });
  }

  async #register(): Promise<void> {
    const status = await this.#post(RelayApiPaths.register, this.#options.relay);
    this.#registered = status === 200;
    if (this.#registered) this.#log.info({ cloud: this.#options.cloudUrl }, 'registered with the cloud');
  }

  async #heartbeat(): Promise<void> {
    if (this.#closed) return;
    if (!this.#registered) return this.#register();
    const now = Date.now();
    const body: HeartbeatRequest = {
      relayId: this.#options.relay.relayId,
      streams: this.#options.streams.streams.map((s) => ({
        userId: s.userId,
        streamId: s.streamId,
        state: s.state === 'idle' ? 'publishing' : s.state,
        stats: streamStats(s, this.#options.viewers, now),
      })),
      cpu: this.#cpuSince(),
      draining: this.#options.draining?.() ?? false,
    };
    const { status, json } = await this.#request(RelayApiPaths.heartbeat, body);
    if (status === 200) this.#endStreams(json);
    // Destinations can change while a stream is live (apps join and leave): ask again for each live one,
    // beside the heartbeat (never delaying the next one) and never two rounds at once.
    if (status === 200 && this.#options.restreaming && !this.#refreshing) {
      this.#refreshing = Promise.all(
        this.#options.streams.streams.filter((s) => s.state !== 'ended').map((s) => this.#destinations(s)),
      ).finally(() => {
        this.#refreshing = null;
      });
    }
    if (status === 404) {
      this.#registered = false;
      await this.#register();
    }
  }

  /**
   * Cores this process used since the last heartbeat (user + system, 1 = one core busy). FFmpeg children
   * are not counted: their CPU is the kernel's to report, and streams on the relay stand for them.
   */
  #cpuSince(): number {
    const usage = process.cpuUsage();
    const at = performance.now();
    const usedUs = usage.user - this.#cpuMark.usage.user + (usage.system - this.#cpuMark.usage.system);
    const elapsedUs = (at - this.#cpuMark.at) * 1000;
    this.#cpuMark = { usage, at };
    return elapsedUs > 0 ? Math.min(1024, Math.max(0, Math.round((usedUs / elapsedUs) * 1000) / 1000)) : 0;
  }

  /** Asks the cloud for a stream's re-streaming destinations and hands them to the restreaming. */
  async #destinations(stream: { key: string; userId: string; streamId: string }): Promise<void> {
    const restreaming = this.#options.restreaming;
    if (!restreaming || this.#closed) return;
    const path = `${RelayApiPaths.destinations}/${encodeURIComponent(stream.userId)}/${encodeURIComponent(stream.streamId)}`;
    try {
      const res = await fetch(new URL(path, this.#options.cloudUrl), {
        headers: { authorization: `Bearer ${this.#options.secret}` },
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 5000),
      });
      if (!res.ok) {
        await res.arrayBuffer();
        return;
      }
      const parsed = DestinationsResponse.safeParse(await res.json());
      // No answer keeps what runs (a cloud blip must not stop a live restream); an answer replaces it.
      if (parsed.success) restreaming.setDestinations(stream.key, parsed.data.destinations);
      else this.#log.warn({ path }, 'cloud sent destinations that break the contract');
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'destinations not fetched (cloud unreachable)');
    }
  }

  /**
   * Whether to record a stream, and the start that names its recording: the cloud's answer for a managed
   * stream (its app asked for a recording; its start, the same on every relay it visits), else RECORDING and
   * the stream's own start. Throws when the cloud cannot be asked (the recorder then falls back itself).
   */
  async recordingDecision(
    stream: { userId: string; streamId: string; createdAt: number },
    recordAll: boolean,
  ): Promise<{ record: boolean; startedAt: number }> {
    const path = `${RelayApiPaths.destinations}/${encodeURIComponent(stream.userId)}/${encodeURIComponent(stream.streamId)}`;
    const res = await fetch(new URL(path, this.#options.cloudUrl), {
      headers: { authorization: `Bearer ${this.#options.secret}` },
      signal: AbortSignal.timeout(this.#options.timeoutMs ?? 5000),
    });
    if (!res.ok) {
      await res.arrayBuffer();
      throw new Error(`cloud answered ${res.status}`);
    }
    const parsed = DestinationsResponse.safeParse(await res.json());
    if (!parsed.success) throw new Error('cloud sent destinations that break the contract');
    const option = parsed.data.recording;
    if (!option) return { record: recordAll, startedAt: stream.createdAt };
    return { record: recordAll || option.mode === 'automatic', startedAt: option.startedAt };
  }

  /** A recording (part) is uploaded: the cloud tells the stream's apps its replay URLs. */
  recordingReady(body: Omit<RecordingReadyRequest, 'relayId'>): void {
    this.#enqueue(RelayApiPaths.recordingReady, { ...body, relayId: this.#options.relay.relayId });
  }

  /** Events still waiting for the cloud. */
  get queued(): number {
    return this.#queue.length;
  }

  #event(path: string, stream: { userId: string; streamId: string }, reason?: string): void {
    const body: StreamEventRequest = {
      relayId: this.#options.relay.relayId,
      userId: stream.userId,
      streamId: stream.streamId,
      // The contract caps it at 200 characters.
      ...(reason ? { reason: reason.length > 200 ? `${reason.slice(0, 199)}…` : reason } : {}),
    };
    this.#enqueue(path, body);
  }

  #enqueue(path: string, body: unknown): void {
    if (this.#closed) return;
    if (this.#queue.length >= (this.#options.maxQueue ?? 1000)) {
      this.#queue.shift();
      this.stats.dropped++;
      this.#log.warn(
        { dropped: this.stats.dropped },
        'cloud unreachable for long: oldest stream event dropped',
      );
    }
    this.#queue.push({
      path,
      body,
      key: `${this.#options.relay.relayId}-${Date.now().toString(36)}-${this.#nextKey++}`,
    });
    void this.#drain();
  }

  /** Sends queued events in order; a failure pauses (with backoff) and keeps the event at the head. */
  async #drain(): Promise<void> {
    if (this.#sending || this.#retryTimer || this.#closed) return;
    this.#sending = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const head = this.#queue[0]!;
        const status = await this.#post(head.path, head.body, head.key);
        if (status === 0 || status >= 500) {
          const retry = this.#options.retryMs ?? { first: 500, max: 10_000 };
          this.#retryPause = Math.min(retry.max, this.#retryPause ? this.#retryPause * 2 : retry.first);
          this.#retryTimer = setTimeout(() => {
            this.#retryTimer = null;
            void this.#drain();
          }, this.#retryPause);
          return;
        }
        // Delivered, or refused for good (4xx: retrying would not help; it was logged).
        this.#queue.shift();
        this.#retryPause = 0;
      }
    } finally {
      this.#sending = false;
    }
  }

  /** Hands the streams a heartbeat's answer lists to `endStream` (an answer that breaks the contract: none). */
  #endStreams(json: unknown): void {
    const parsed = HeartbeatResponse.safeParse(json);
    if (!parsed.success) {
      if (json !== undefined) this.#log.warn('cloud sent a heartbeat answer that breaks the contract');
      return;
    }
    for (const s of parsed.data.end ?? []) {
      this.#log.info({ userId: s.userId, streamId: s.streamId }, 'the cloud ended this stream: ending it');
      this.#options.endStream?.(s.userId, s.streamId);
    }
  }

  /** POSTs JSON; resolves with the status, or 0 when the cloud could not be reached. Never throws. */
  async #post(path: string, body: unknown, idempotencyKey?: string): Promise<number> {
    return (await this.#request(path, body, idempotencyKey)).status;
  }

  /** POSTs JSON; the status (0: unreachable) and the JSON answer when there is one. Never throws. */
  async #request(
    path: string,
    body: unknown,
    idempotencyKey?: string,
  ): Promise<{ status: number; json?: unknown }> {
    this.stats.sent++;
    try {
      const res = await fetch(new URL(path, this.#options.cloudUrl), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${this.#options.secret}`,
          ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 5000),
      });
      const text = await res.text();
      if (!res.ok) {
        this.stats.failed++;
        this.#log.warn({ path, status: res.status }, 'cloud refused a relay call');
        return { status: res.status };
      }
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined; // not JSON: an older cloud's plain answer; nothing to act on
      }
      return { status: res.status, json };
    } catch (err) {
      this.stats.failed++;
      this.#log.warn({ path, err: (err as Error).message }, 'cloud unreachable');
      return { status: 0 };
    }
  }
}
