/**
 * The managed streams of the cloud: one per user, many viewers (apps) each. It runs the pure lifecycle
 * (`lifecycle.ts`) and carries out its effects: placement and release through the store, publish tokens,
 * `start_rtmp_stream` / `stop_rtmp_stream` / keep-alives to the glasses, and `managed_stream_status` to every
 * viewer. It owns one keep-alive timer per stream and one relay-liveness timer; close() releases them.
 * Stream ids are short (the glasses' link is Bluetooth) and unguessable (crypto).
 *
 * A relay is lost, and its streams placed again, only when the store has not seen it within the relay expiry
 * AND this instance has not heard from it either (`relayContact`: its register and heartbeat calls, also
 * those the store could not take). So a store that lost its data (Redis restarted empty) or cannot answer
 * moves nothing while the relays keep calling. Silence is counted only while this instance runs: when the
 * liveness timer fires far too late, the process was not running (frozen, suspended, starved), the relays'
 * calls of that time were never heard, and for one expiry after that no relay is declared lost; the relays
 * are heard again meanwhile. A store call that fails inside an effect is logged, never thrown out; a
 * placement or a start it prevented is tried again at the next liveness check.
 */
import { randomBytes } from 'node:crypto';
import { storeKey } from '../contracts/keys.ts';
import type { CloudToGlasses, GlassesToCloud, ManagedStreamStatus } from '../contracts/mentra.ts';
import type { HeartbeatRequest, StreamToEnd } from '../contracts/relay-api.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { createHlsProbe, type HlsProbe } from './hls-probe.ts';
import { KeepAliveTracker } from './keepalive.ts';
import { begin, type Effect, type LifecycleEvent, type LifecycleState, transition } from './lifecycle.ts';
import { type CloudStore, DEFAULT_RELAY_EXPIRY_MS } from './store.ts';
import { signPublishToken } from './tokens.ts';

/** How the cloud reaches a user's glasses (the glasses gateway). */
export interface GlassesLink {
  send(userId: string, message: CloudToGlasses): boolean;
}

export interface ManagedStreamsOptions {
  store: CloudStore;
  glasses: GlassesLink;
  log: Logger;
  /** PUBLISH_TOKEN_SECRET; null publishes without tokens (dev mode with PUBLISH_AUTH=off). */
  tokenSecret: string | null;
  keepAliveMs: number;
  ackTimeoutMs: number;
  maxMissedAcks: number;
  /** How often relays are checked for liveness (about a heartbeat period). */
  relayCheckMs: number;
  /** RELAY_EXPIRY_SECONDS in ms (default 30 s): how long a relay may be silent before it is lost. */
  relayExpiryMs?: number;
  reservationTtlMs?: number;
  /**
   * The seed's static relay list, used only while no relay is registered. Each counts as relay
   * `static-{host}-{port}` (the RELAY_ID such a relay must run with for publish tokens), never expires, and
   * takes streams least-used first.
   */
  staticRelays?: { rtmpUrl: string; hlsUrl: string }[];
  /** Replaces the relay's HLS base in announced URLs (a CDN), when set. */
  hlsPublicBaseUrl?: string | undefined;
  now?: () => number;
  /** A clock that only moves forward, in ms (default performance.now): silences and pauses. */
  monotonic?: () => number;
  /** Whether a playlist URL answers (default: GET it until it lists media); `active` waits for it. */
  probeHls?: HlsProbe;
}

export interface ManagedStream {
  streamId: string;
  userId: string;
  sessionId: string;
  viewers: Set<string>;
  state: LifecycleState;
  keepAlive: KeepAliveTracker;
  timer: NodeJS.Timeout;
  /** An effect the store could not carry out, tried again at the next relay check. */
  retry: 'place' | 'start' | null;
  /** Re-streaming destinations each viewing app asked for (the relay pushes their union). */
  destinations: Map<string, RestreamTarget[]>;
  /** The relay's last report of those destinations (URLs redacted), sent to apps as `outputs`. */
  outputs: RestreamOutputStatus[];
  /** The playlist check in flight: which URL, and how to stop it. */
  probe: { url: string; abort: AbortController } | null;
}

export interface RestreamTarget {
  url: string;
  name?: string | undefined;
}

export type RestreamOutputStatus = NonNullable<ManagedStreamStatus['outputs']>[number];

/** Destinations pushed per stream at most (the app contract allows 10 per request). */
export const MAX_STREAM_DESTINATIONS = 10;

export type ManagedStreamsEvents = {
  /** A status for every viewer of a stream (the app gateway and SSE fan it out). */
  status: [{ userId: string; streamId: string; viewers: string[] }, ManagedStreamStatus];
};

export class ManagedStreamError extends Error {
  constructor(
    readonly code: 'NO_RELAY_AVAILABLE' | 'GLASSES_NOT_CONNECTED' | 'STREAM_NOT_FOUND',
    message: string,
  ) {
    super(message);
    this.name = 'ManagedStreamError';
  }
}

const STREAM_ID_BYTES = 6; // 8 base64url characters, 48 random bits
/** Relays this instance remembers hearing from (the oldest is forgotten first). */
const MAX_HEARD_RELAYS = 10_000;
/** Ended streams remembered, so their relay hears to end them (longer than a relay's reconnect window). */
const ENDED_TTL_MS = 10 * 60_000;
const MAX_ENDED = 10_000;

export class ManagedStreams extends TypedEmitter<ManagedStreamsEvents> {
  readonly #o: ManagedStreamsOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #byUser = new Map<string, ManagedStream>();
  readonly #byId = new Map<string, ManagedStream>();
  readonly #relayTimer: NodeJS.Timeout;
  readonly #static: { relayId: string; rtmpUrl: string; hlsUrl: string; streams: number }[];
  readonly #monotonic: () => number;
  readonly #expiryMs: number;
  /** relayId → when this instance last heard from it (monotonic ms), oldest first. */
  readonly #heard = new Map<string, number>();
  /** When the liveness timer last fired (monotonic ms). */
  #lastTick: number;
  /** No relay is declared lost before this (monotonic ms): the instance was not running for a while. */
  #graceUntil = 0;
  #checking = false;
  readonly #probeHls: HlsProbe;
  /** storeKey → the relay an ended managed stream was last on, and until when to remember it (ms). */
  readonly #ended = new Map<string, { relayId: string; until: number }>();

  constructor(options: ManagedStreamsOptions) {
    super();
    this.#o = options;
    this.#log = options.log.child({ component: 'managed-streams' });
    this.#now = options.now ?? Date.now;
    this.#monotonic = options.monotonic ?? (() => performance.now());
    this.#expiryMs = options.relayExpiryMs ?? DEFAULT_RELAY_EXPIRY_MS;
    this.#lastTick = this.#monotonic();
    this.#probeHls = options.probeHls ?? createHlsProbe();
    this.#relayTimer = setInterval(() => void this.checkRelays(), options.relayCheckMs);
    this.#static = (options.staticRelays ?? []).map((r) => ({
      ...r,
      relayId: `static-${r.rtmpUrl.replace(/^rtmps?:\/\//, '').replace(/[^A-Za-z0-9._-]/g, '-')}`.slice(
        0,
        64,
      ),
      streams: 0,
    }));
  }

  get(streamId: string): ManagedStream | undefined {
    return this.#byId.get(streamId);
  }

  byUser(userId: string): ManagedStream | undefined {
    return this.#byUser.get(userId);
  }

  /** The status a viewer sees now. */
  statusOf(stream: ManagedStream): ManagedStreamStatus {
    const { status, hlsUrl, message } = stream.state.reported;
    const url = hlsUrl ? this.#publicUrl(hlsUrl) : null;
    // The relay serves the latest keyframe next to the playlist (relay thumbnails).
    const thumbnailUrl = url?.replace(/index\.m3u8$/, 'thumbnail.jpg');
    return {
      type: 'managed_stream_status',
      status,
      streamId: stream.streamId,
      ...(url ? { hlsUrl: url, dashUrl: '' } : {}),
      ...(thumbnailUrl && thumbnailUrl !== url ? { thumbnailUrl, previewUrl: thumbnailUrl } : {}),
      ...(message ? { message } : {}),
      ...(stream.outputs.length > 0 ? { outputs: stream.outputs } : {}),
    };
  }

  /**
   * A relay called (register or heartbeat), whether or not the store knew it or could answer: it is alive.
   */
  relayContact(relayId: string): void {
    this.#heard.delete(relayId);
    this.#heard.set(relayId, this.#monotonic());
    if (this.#heard.size > MAX_HEARD_RELAYS) this.#heard.delete(this.#heard.keys().next().value!);
  }

  /** A relay deregistered: what this instance heard from it no longer keeps its streams. */
  relayGone(relayId: string): void {
    this.#heard.delete(relayId);
  }

  /** An app asks for the user's managed stream: it joins the live one, or one is created and placed. */
  async request(
    userId: string,
    packageName: string,
    destinations: readonly RestreamTarget[] = [],
  ): Promise<ManagedStreamStatus> {
    const existing = this.#byUser.get(userId);
    if (existing) {
      existing.viewers.add(packageName);
      this.#setDestinations(existing, packageName, destinations);
      return this.statusOf(existing);
    }
    const streamId = randomBytes(STREAM_ID_BYTES)
      .toString('base64url')
      .replace(/[^A-Za-z0-9]/g, 'x');
    const placement = await this.#place(`${userId}/${streamId}`);
    if (!placement) throw new ManagedStreamError('NO_RELAY_AVAILABLE', 'no relay has room for a new stream');
    if (this.#byUser.has(userId)) {
      // Another app created it while we placed: join that one.
      await this.#o.store.release(`${userId}/${streamId}`);
      return this.request(userId, packageName);
    }
    const { state, effects } = begin(placement.relayId);
    const stream: ManagedStream = {
      streamId,
      userId,
      sessionId: randomBytes(6).toString('base64url'),
      viewers: new Set([packageName]),
      state,
      keepAlive: new KeepAliveTracker({
        ackTimeoutMs: this.#o.ackTimeoutMs,
        maxMissed: this.#o.maxMissedAcks,
      }),
      timer: setInterval(() => this.#keepAlive(stream), this.#o.keepAliveMs),
      retry: null,
      destinations: new Map(),
      outputs: [],
      probe: null,
    };
    this.#setDestinations(stream, packageName, destinations);
    this.#byUser.set(userId, stream);
    this.#byId.set(streamId, stream);
    this.#log.info({ userId, streamId, relayId: placement.relayId }, 'managed stream created');
    await this.#apply(stream, effects);
    return this.statusOf(stream);
  }

  /** An app stops watching; the last one leaving stops the glasses. */
  async stop(userId: string, packageName: string): Promise<void> {
    const stream = this.#byUser.get(userId);
    if (!stream) return;
    stream.viewers.delete(packageName);
    stream.destinations.delete(packageName);
    if (stream.viewers.size === 0) await this.#event(stream, { type: 'last_viewer_left' });
  }

  /** A message from the user's glasses. */
  async glassesMessage(userId: string, message: GlassesToCloud): Promise<void> {
    const stream = this.#byUser.get(userId);
    if (!stream || (message.streamId && message.streamId !== stream.streamId)) return;
    if (message.type === 'keep_alive_ack') {
      stream.keepAlive.ack(message.ackId, this.#now());
      return;
    }
    await this.#event(stream, {
      type: 'glasses_status',
      status: message.status,
      errorDetails: message.errorDetails,
      attempt: message.attempt,
      maxAttempts: message.maxAttempts,
    });
  }

  /** What the relay should push for this stream: every viewing app's destinations, each URL once. */
  destinationsOf(userId: string, streamId: string): RestreamTarget[] {
    const stream = this.#byId.get(streamId);
    if (!stream || stream.userId !== userId) return [];
    const byUrl = new Map<string, RestreamTarget>();
    for (const list of stream.destinations.values()) {
      for (const d of list) if (!byUrl.has(d.url)) byUrl.set(d.url, d);
    }
    return [...byUrl.values()].slice(0, MAX_STREAM_DESTINATIONS);
  }

  /** The relay reports its re-streaming outputs: apps hear the new list with the current status. */
  restreamStatus(userId: string, streamId: string, outputs: RestreamOutputStatus[]): void {
    const stream = this.#byId.get(streamId);
    if (!stream || stream.userId !== userId) return;
    const same = JSON.stringify(stream.outputs) === JSON.stringify(outputs);
    stream.outputs = outputs;
    if (same) return;
    this.safeEmit(
      'status',
      { userId: stream.userId, streamId: stream.streamId, viewers: [...stream.viewers] },
      this.statusOf(stream),
    );
  }

  #setDestinations(
    stream: ManagedStream,
    packageName: string,
    destinations: readonly RestreamTarget[],
  ): void {
    if (destinations.length === 0) stream.destinations.delete(packageName);
    else stream.destinations.set(packageName, destinations.slice(0, MAX_STREAM_DESTINATIONS));
  }

  /**
   * hls-ready from a relay (the relay routes' guard checked who sent it and the URL). Apps hear `active`
   * once the URL answers; resolves when the check is over.
   */
  async hlsReady(userId: string, streamId: string, relayId: string, hlsUrl: string): Promise<void> {
    const stream = this.#byId.get(streamId);
    if (!stream || stream.userId !== userId || stream.state.relayId !== relayId) return;
    await this.#verify(stream, relayId, hlsUrl);
  }

  /**
   * Streams a relay reported (heartbeat) that it should end now: their managed stream ended, or moved to
   * another relay. A stream the cloud never managed is the relay's own business and stays.
   */
  streamsToEnd(hb: Pick<HeartbeatRequest, 'relayId' | 'streams'>): StreamToEnd[] {
    const now = this.#now();
    const out: StreamToEnd[] = [];
    for (const s of hb.streams) {
      if (s.state === 'ended') continue;
      const live = this.#byId.get(s.streamId);
      if (live && live.userId === s.userId) {
        if (live.state.relayId !== null && live.state.relayId !== hb.relayId)
          out.push({ userId: s.userId, streamId: s.streamId });
        continue;
      }
      const ended = this.#ended.get(storeKey(s.userId, s.streamId));
      if (ended && ended.until > now && ended.relayId === hb.relayId)
        out.push({ userId: s.userId, streamId: s.streamId });
    }
    return out;
  }

  /** Checks the URL answers, then feeds `hls_ready` (if the stream is still on that relay). */
  async #verify(stream: ManagedStream, relayId: string, hlsUrl: string): Promise<void> {
    if (stream.probe?.url === hlsUrl) return;
    stream.probe?.abort.abort();
    const abort = new AbortController();
    const probe = { url: hlsUrl, abort };
    stream.probe = probe;
    let answers = false;
    try {
      answers = await this.#probeHls(hlsUrl, abort.signal);
    } catch (err) {
      this.#log.warn({ streamId: stream.streamId, err: (err as Error).message }, 'playlist check failed');
    }
    if (stream.probe !== probe) return; // replaced by a newer check, or the stream ended
    stream.probe = null;
    if (!answers) {
      this.#log.warn({ streamId: stream.streamId, relayId }, 'announced playlist never answered');
      return;
    }
    if (this.#byId.get(stream.streamId) === stream && stream.state.relayId === relayId)
      await this.#event(stream, { type: 'hls_ready', relayId, hlsUrl });
  }

  /** A relay of the seed's static list, by its relay id. */
  staticRelay(relayId: string): { rtmpUrl: string; hlsUrl: string } | undefined {
    return this.#static.find((r) => r.relayId === relayId);
  }

  /** stream-ended from a relay (the publisher's reconnect window closed, or it was kicked). */
  async relayStreamEnded(userId: string, streamId: string, relayId: string): Promise<void> {
    const stream = this.#byId.get(streamId);
    if (!stream || stream.userId !== userId) return;
    await this.#event(stream, { type: 'relay_stream_ended', relayId });
  }

  /** Ends every stream (cloud shutdown) and releases the timers. */
  async close(): Promise<void> {
    clearInterval(this.#relayTimer);
    this.#heard.clear();
    for (const stream of [...this.#byId.values()])
      await this.#event(stream, { type: 'stop_requested', message: 'cloud stopping' });
    for (const stream of [...this.#byId.values()]) this.#forget(stream);
  }

  async #event(stream: ManagedStream, event: LifecycleEvent): Promise<void> {
    const result = transition(stream.state, event);
    if (!result.ok) {
      this.#log.debug({ streamId: stream.streamId, ...result.refusal }, 'lifecycle event refused');
      return;
    }
    const before = stream.state.relayId;
    stream.state = result.state;
    if (before !== null && (stream.state.phase === 'stopped' || stream.state.phase === 'error'))
      this.#rememberEnded(stream, before);
    // An ended stream leaves the maps first: its effects (tell the apps, stop the glasses, free the relay)
    // still run, but nothing can find or join it meanwhile.
    if (stream.state.phase === 'stopped' || stream.state.phase === 'error') this.#forget(stream);
    await this.#apply(stream, result.effects);
  }

  async #apply(stream: ManagedStream, effects: Effect[]): Promise<void> {
    for (const effect of effects) {
      try {
        await this.#carryOut(stream, effect);
      } catch (err) {
        // The store is unreachable (only its calls throw here): log it, and try a placement or a start
        // again at the next relay check; a release is left to the reservation's expiry and the relay's
        // next heartbeat, which replaces what the store holds for it.
        const retry =
          effect.kind === 'place_relay' ? 'place' : effect.kind === 'start_glasses' ? 'start' : null;
        if (retry) stream.retry = retry;
        this.#log.warn(
          {
            streamId: stream.streamId,
            effect: effect.kind,
            retry: retry !== null,
            err: (err as Error).message,
          },
          'managed stream: effect failed',
        );
      }
    }
  }

  async #carryOut(stream: ManagedStream, effect: Effect): Promise<void> {
    switch (effect.kind) {
      case 'notify_apps':
        this.safeEmit(
          'status',
          { userId: stream.userId, streamId: stream.streamId, viewers: [...stream.viewers] },
          this.statusOf(stream),
        );
        break;
      case 'start_glasses':
        await this.#startGlasses(stream, effect.relayId);
        break;
      case 'stop_glasses':
        this.#o.glasses.send(stream.userId, {
          type: 'stop_rtmp_stream',
          sessionId: stream.sessionId,
          appId: 'MANAGED_STREAM',
          streamId: stream.streamId,
          timestamp: this.#now(),
        });
        break;
      case 'release_relay': {
        const fixed = this.#static.find((r) => r.relayId === effect.relayId);
        if (fixed) fixed.streams = Math.max(0, fixed.streams - 1);
        else await this.#o.store.release(`${stream.userId}/${stream.streamId}`);
        break;
      }
      case 'verify_hls':
        // Not awaited: the check may take seconds, and the caller (a glasses message) must not wait.
        void this.#verify(stream, effect.relayId, effect.hlsUrl);
        break;
      case 'place_relay': {
        const placement = await this.#place(`${stream.userId}/${stream.streamId}`);
        await this.#event(
          stream,
          placement ? { type: 'replaced', relayId: placement.relayId } : { type: 'timeout' },
        );
        break;
      }
    }
  }

  /** The store's placement; the static list only while no relay is registered at all. */
  async #place(streamKey: string): Promise<{ relayId: string } | null> {
    const now = this.#now();
    const placed = await this.#o.store.place(streamKey, {
      now,
      reservationTtlMs: this.#o.reservationTtlMs ?? 30_000,
    });
    if (placed || this.#static.length === 0 || (await this.#o.store.liveRelays(now)).length > 0)
      return placed;
    const fixed = this.#static.reduce((a, b) => (b.streams < a.streams ? b : a));
    fixed.streams++;
    return { relayId: fixed.relayId };
  }

  async #startGlasses(stream: ManagedStream, relayId: string): Promise<void> {
    const relay =
      this.#static.find((r) => r.relayId === relayId) ??
      (await this.#o.store.liveRelays(this.#now())).find((r) => r.relayId === relayId);
    if (!relay) {
      await this.#event(stream, { type: 'relay_lost', relayId });
      return;
    }
    let url = `${relay.rtmpUrl.replace(/\/+$/, '')}/live/${stream.userId}/${stream.streamId}`;
    if (this.#o.tokenSecret) {
      const token = await signPublishToken(this.#o.tokenSecret, {
        userId: stream.userId,
        streamId: stream.streamId,
        relayId,
        ttlSeconds: 3600,
      });
      url += `?token=${token}`;
    }
    const sent = this.#o.glasses.send(stream.userId, {
      type: 'start_rtmp_stream',
      sessionId: stream.sessionId,
      rtmpUrl: url,
      appId: 'MANAGED_STREAM',
      streamId: stream.streamId,
      timestamp: this.#now(),
    });
    if (!sent) this.#log.warn({ userId: stream.userId, streamId: stream.streamId }, 'glasses not connected');
  }

  #keepAlive(stream: ManagedStream): void {
    const now = this.#now();
    const tick = stream.keepAlive.tick(now);
    if (tick.ended) {
      this.#log.warn(
        { streamId: stream.streamId, missed: tick.missed },
        'glasses stopped answering keep-alives',
      );
      void this.#event(stream, { type: 'keepalive_missed_limit' });
      return;
    }
    const ackId = stream.keepAlive.next(now);
    this.#o.glasses.send(stream.userId, { type: 'keep_rtmp_stream_alive', streamId: stream.streamId, ackId });
  }

  /**
   * The liveness timer's work (public for tests): notices that this instance was not running, moves the
   * streams of lost relays, and retries what a failed store call left undone. One check at a time.
   */
  async checkRelays(): Promise<void> {
    const at = this.#monotonic();
    const late = at - this.#lastTick - this.#o.relayCheckMs;
    this.#lastTick = at;
    // Far too late (by more than half of what a relay's expiry leaves after one check period): the process
    // was not running, and the relays' calls of that time went unheard.
    if (late > Math.max(this.#o.relayCheckMs, (this.#expiryMs - this.#o.relayCheckMs) / 2)) {
      this.#graceUntil = at + this.#expiryMs;
      this.#log.warn(
        { pausedMs: Math.round(late), graceMs: this.#expiryMs },
        'the cloud was not running: no relay is declared lost until each had an expiry to be heard',
      );
    }
    if (this.#checking) return;
    this.#checking = true;
    try {
      await this.#checkRelays(at);
    } catch (err) {
      this.#log.error({ err }, 'relay check failed');
    } finally {
      this.#checking = false;
    }
  }

  async #checkRelays(at: number): Promise<void> {
    if (at < this.#graceUntil) return;
    const resumed = this.#graceUntil !== 0;
    this.#graceUntil = 0;
    if (this.#byId.size > 0) await this.#moveLostStreams();
    if (resumed) this.#log.info('relay liveness checks resumed');
  }

  /** Places again the streams of relays neither the store nor this instance heard from lately. */
  async #moveLostStreams(): Promise<void> {
    let live: Set<string>;
    try {
      live = new Set((await this.#o.store.liveRelays(this.#now())).map((r) => r.relayId));
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'store unreachable: relay liveness not checked');
      return;
    }
    const heardLately = (relayId: string): boolean => {
      const heard = this.#heard.get(relayId);
      return heard !== undefined && this.#monotonic() - heard < this.#expiryMs;
    };
    for (const stream of [...this.#byId.values()]) {
      if (this.#byId.get(stream.streamId) !== stream) continue; // ended meanwhile
      const relayId = stream.state.relayId;
      if (
        relayId &&
        !live.has(relayId) &&
        !heardLately(relayId) &&
        !this.#static.some((r) => r.relayId === relayId)
      ) {
        this.#log.warn({ streamId: stream.streamId, relayId }, 'relay lost: placing the stream again');
        await this.#event(stream, { type: 'relay_lost', relayId });
      } else if (stream.retry) {
        const retry = stream.retry;
        stream.retry = null;
        if (retry === 'place' && stream.state.phase === 'reconnecting' && relayId === null)
          await this.#apply(stream, [{ kind: 'place_relay' }]);
        else if (retry === 'start' && relayId !== null)
          await this.#apply(stream, [{ kind: 'start_glasses', relayId }]);
      }
    }
  }

  #rememberEnded(stream: ManagedStream, relayId: string): void {
    const key = storeKey(stream.userId, stream.streamId);
    this.#ended.delete(key);
    this.#ended.set(key, { relayId, until: this.#now() + ENDED_TTL_MS });
    const now = this.#now();
    for (const [k, v] of this.#ended) {
      if (this.#ended.size <= MAX_ENDED && v.until > now) break;
      this.#ended.delete(k); // oldest first: expired, or past the cap
    }
  }

  #forget(stream: ManagedStream): void {
    clearInterval(stream.timer);
    stream.probe?.abort.abort();
    stream.probe = null;
    if (this.#byId.get(stream.streamId) === stream) this.#byId.delete(stream.streamId);
    if (this.#byUser.get(stream.userId) === stream) this.#byUser.delete(stream.userId);
  }

  #publicUrl(hlsUrl: string): string {
    const base = this.#o.hlsPublicBaseUrl;
    if (!base) return hlsUrl;
    const at = hlsUrl.indexOf('/hls/');
    return at < 0 ? hlsUrl : `${base.replace(/\/+$/, '')}${hlsUrl.slice(at)}`;
  }
}
