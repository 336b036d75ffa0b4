/**
 * The managed streams of the cloud (one per user, many viewing apps each): the effects of the pure lifecycle
 * (`lifecycle.ts`) carried out over shared state. Each act loads the stream's record from the state store
 * (`stream-state.ts`: memory, or Redis for replicas and restarts), runs the transition, saves it only if no
 * other replica changed it meanwhile (else loads and acts again), and only then carries out the effects:
 * placement and release (`static-relays.ts` over the store), publish tokens, commands to the glasses, and
 * `managed_stream_status` to every viewer. Statuses and glasses commands travel on the bus (`bus.ts`), so the
 * replica holding an app's or the glasses' socket delivers them; a start or stop for glasses with no socket
 * anywhere is held in the state store until they connect. Timers that must run once across replicas (glasses
 * keep-alives, relay liveness: `relay-liveness.ts`) run on the replica holding the lease (`lease.ts`).
 *
 * A cloud on shared state that stops (deploy, crash) ends nothing: another replica or its next start finds
 * every stream as it was (same streamId, URL and /watch link). A cloud on memory state ends its streams.
 * Stream ids are short (the glasses' link is Bluetooth) and unguessable (crypto).
 */

import { randomBytes } from 'node:crypto';
import { publishKey, storeKey } from '../contracts/keys.ts';
import type { CloudToGlasses, GlassesToCloud, ManagedStreamStatus } from '../contracts/mentra.ts';
import type { HeartbeatRequest, StreamToEnd } from '../contracts/relay-api.ts';
import {
  dashUrlOf,
  rtmpPublishUrl,
  srtPublishUrl,
  thumbnailUrlOf,
  whipPublishUrl,
  withPlaybackToken,
  withPublicBase,
} from '../contracts/urls.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { PlaybackTokenSigner } from '../shared/playback-token.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type BusMessage, type CloudBus, MemoryBus, type StatusTarget } from './bus.ts';
import { createHlsProbe, type HlsProbe } from './hls-probe.ts';
import { KeepAliveTracker } from './keepalive.ts';
import { ALWAYS_HELD, type Lease } from './lease.ts';
import {
  begin,
  type Effect,
  END_PHASES,
  type LifecycleEvent,
  type LifecycleState,
  transition,
} from './lifecycle.ts';
import { RelayLiveness } from './relay-liveness.ts';
import { StaticRelays } from './static-relays.ts';
import { type CloudStore, DEFAULT_RELAY_EXPIRY_MS } from './store.ts';
import {
  MemoryStreamState,
  type RecordingRecord,
  type RestreamOutputRecord,
  type RestreamTarget,
  type StreamRecord,
  type StreamStateStore,
} from './stream-state.ts';
import { signCompactPublishToken, signPublishToken } from './tokens.ts';

export type { RestreamTarget } from './stream-state.ts';

/** How the cloud reaches the glasses whose socket this process holds (the glasses gateway). */
export interface GlassesLink {
  send(userId: string, message: CloudToGlasses): boolean;
}

export interface ManagedStreamsOptions {
  store: CloudStore;
  /** Where streams live (default: this process's memory). */
  state?: StreamStateStore;
  /** How replicas reach each other (default: this process only). */
  bus?: CloudBus;
  /** Who runs the once-only timers (default: this process). */
  lease?: Lease;
  glasses: GlassesLink;
  log: Logger;
  /** PUBLISH_TOKEN_SECRET; null publishes without tokens (dev mode with PUBLISH_AUTH=off). */
  tokenSecret: string | null;
  /**
   * PLAYBACK_AUTH=token: signs the playback token every playback URL of every status carries (and the
   * playlist check's). Absent: URLs without tokens.
   */
  playbackTokens?: PlaybackTokenSigner | null;
  /** HLS_END_GRACE_SECONDS in ms: an ended stream's playback tokens live no longer than this from now. */
  endGraceMs?: number;
  keepAliveMs: number;
  ackTimeoutMs: number;
  maxMissedAcks: number;
  /** How often relays are checked for liveness (about a heartbeat period). */
  relayCheckMs: number;
  /** RELAY_EXPIRY_SECONDS in ms (default 30 s): how long a relay may be silent before it is lost. */
  relayExpiryMs?: number;
  reservationTtlMs?: number;
  /** The seed's static relay list, used only while no relay is registered (`static-relays.ts`). */
  staticRelays?: { rtmpUrl: string; hlsUrl: string }[];
  /** Replaces the relay's HLS base in announced URLs (a CDN), when set. */
  hlsPublicBaseUrl?: string | undefined;
  /** GLASSES_INGEST: the ingest handed to the glasses (rtmp until relays announce SRT and WHIP bases). */
  glassesIngest?: 'rtmp' | 'srt' | 'whip';
  /** The SRT passphrase of a stream key (the relays derive the same from SRT_PASSPHRASE_SECRET); null: none. */
  srtPassphrase?: (streamKey: string) => string | null;
  now?: () => number;
  /** A clock that only moves forward, in ms (default performance.now): silences and pauses. */
  monotonic?: () => number;
  /** Whether a playlist URL answers (default: GET it until it lists media); `active` waits for it. */
  probeHls?: HlsProbe;
  /**
   * Whether a relay answers at all (default: its origin's `/health`, a few tries): asked when glasses report
   * that their publish failed, so a dead relay is left in seconds instead of after the relay expiry.
   */
  probeRelay?: (hlsBase: string) => Promise<boolean>;
}

/** A relay is dead when its origin's /health does not answer this many tries, this far apart. */
const RELAY_PROBE_TRIES = 3;
const RELAY_PROBE_PAUSE_MS = 250;
const RELAY_PROBE_TIMEOUT_MS = 1500;
/** Publish tokens the glasses get live an hour: a stream restarted later is handed a fresh one. */
const PUBLISH_TOKEN_TTL_SECONDS = 3600;

async function defaultProbeRelay(hlsBase: string): Promise<boolean> {
  for (let i = 0; i < RELAY_PROBE_TRIES; i++) {
    try {
      const res = await fetch(new URL('/health', hlsBase), {
        signal: AbortSignal.timeout(RELAY_PROBE_TIMEOUT_MS),
      });
      await res.arrayBuffer();
      if (res.status < 500) return true;
    } catch {
      // refused, reset or timed out: tried again below, then counted as dead
    }
    await new Promise((r) => setTimeout(r, RELAY_PROBE_PAUSE_MS));
  }
  return false;
}

/** A managed stream as read (a copy; acting on it goes through the methods). */
export interface ManagedStream {
  streamId: string;
  userId: string;
  sessionId: string;
  viewers: Set<string>;
  state: LifecycleState;
  destinations: Map<string, RestreamTarget[]>;
  outputs: RestreamOutputStatus[];
  /** WHEP playback on the relay serving the stream now; null when it announced none. */
  webrtcUrl: string | null;
  recordings: RecordingRecord[];
}

export type RestreamOutputStatus = RestreamOutputRecord;

/** Destinations pushed per stream at most (the app contract allows 10 per request). */
export const MAX_STREAM_DESTINATIONS = 10;

export type ManagedStreamsEvents = {
  /** A status for every viewer of a stream (the app gateway and SSE fan it out). */
  status: [StatusTarget, ManagedStreamStatus];
};

export class ManagedStreamError extends Error {
  constructor(
    /** A registry code (shared/errors.ts), so the routes answer its status. */
    readonly code: typeof ErrorCodes.NO_RELAY_AVAILABLE,
    message: string,
  ) {
    super(message);
    this.name = 'ManagedStreamError';
  }
}

const STREAM_ID_BYTES = 6; // 8 base64url characters, 48 random bits
/** Ended streams are remembered this long, so their relay hears to end them (past its reconnect window). */
const ENDED_TTL_MS = 10 * 60_000;
/** A start or stop held for glasses with no socket (they give up after 60 s without a keep-alive). */
const HELD_COMMAND_TTL_MS = 60_000;
/** How long a stream waits for a relay with room before it ends in error. */
const PLACE_PATIENCE_MS = 60_000;
/** Saves refused as stale before an act gives up (another replica keeps changing the stream). */
const MAX_CONFLICTS = 8;

function viewOf(r: StreamRecord): ManagedStream {
  return {
    streamId: r.streamId,
    userId: r.userId,
    sessionId: r.sessionId,
    viewers: new Set(r.viewers),
    state: r.state,
    destinations: new Map(r.destinations),
    outputs: r.outputs,
    // Only the serving relay's: a stream that moved plays over WHEP again once the new relay says hls-ready.
    webrtcUrl: r.webrtc && r.webrtc.relayId === r.state.relayId ? r.webrtc.url : null,
    recordings: r.recordings ?? [],
  };
}

export class ManagedStreams extends TypedEmitter<ManagedStreamsEvents> {
  readonly #o: ManagedStreamsOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #state: StreamStateStore;
  readonly #bus: CloudBus;
  readonly #lease: Lease;
  readonly #static: StaticRelays;
  readonly #liveness: RelayLiveness;
  readonly #probeHls: HlsProbe;
  /** This process on the bus. */
  readonly #id = randomBytes(6).toString('hex');
  /** Read cache of every stream (refreshed by this process's acts and the bus). */
  readonly #cache = new Map<string, StreamRecord>();
  readonly #cacheByUser = new Map<string, string>();
  /** Playlist checks in flight, by streamId. */
  readonly #probes = new Map<string, { url: string; abort: AbortController }>();
  /** Relays being checked after glasses failed to publish to them. */
  readonly #suspects = new Set<string>();
  readonly #relayTimer: NodeJS.Timeout;
  readonly #keepAliveTimer: NodeJS.Timeout;
  readonly #onBus = (m: BusMessage): void => this.#heard(m);
  #checking = false;
  #closed = false;
  /** Resolves once the cache holds every stream the state store had at start. */
  readonly ready: Promise<void>;

  constructor(options: ManagedStreamsOptions) {
    super();
    this.#o = options;
    this.#log = options.log.child({ component: 'managed-streams' });
    this.#now = options.now ?? Date.now;
    this.#state = options.state ?? new MemoryStreamState({ now: this.#now });
    this.#bus = options.bus ?? new MemoryBus();
    this.#lease = options.lease ?? ALWAYS_HELD;
    this.#static = new StaticRelays(options.store, options.staticRelays ?? []);
    this.#probeHls = options.probeHls ?? createHlsProbe();
    this.#liveness = new RelayLiveness({
      expiryMs: options.relayExpiryMs ?? DEFAULT_RELAY_EXPIRY_MS,
      checkMs: options.relayCheckMs,
      monotonic: options.monotonic ?? (() => performance.now()),
      log: this.#log,
    });
    this.#bus.on('message', this.#onBus);
    this.#relayTimer = setInterval(() => void this.checkRelays(), options.relayCheckMs);
    this.#keepAliveTimer = setInterval(() => void this.#keepAliveRound(), options.keepAliveMs);
    this.ready = this.#state.all().then(
      (records) => {
        for (const r of records) this.#remember(r);
        if (records.length > 0) this.#log.info({ streams: records.length }, 'managed streams resumed');
      },
      (err: Error) => this.#log.error({ err: err.message }, 'managed streams not loaded at start'),
    );
  }

  /** The stream as this process last saw it (other replicas' changes arrive over the bus). */
  get(streamId: string): ManagedStream | undefined {
    const r = this.#cache.get(streamId);
    return r ? viewOf(r) : undefined;
  }

  byUser(userId: string): ManagedStream | undefined {
    const id = this.#cacheByUser.get(userId);
    return id ? this.get(id) : undefined;
  }

  /** The stream as the state store has it now. */
  async load(streamId: string): Promise<ManagedStream | undefined> {
    const r = await this.#state.get(streamId);
    if (r) this.#remember(r);
    return r ? viewOf(r) : undefined;
  }

  async loadByUser(userId: string): Promise<ManagedStream | undefined> {
    const r = await this.#state.byUser(userId);
    if (r) this.#remember(r);
    return r ? viewOf(r) : undefined;
  }

  /**
   * The playback token for a stream's URLs now (PLAYBACK_AUTH=token), else null: fresh at every status,
   * never outliving an ended stream's grace (architecture §3). `replay`: for a recording's URLs, which stay
   * playable after the stream ends (the TTL alone bounds them).
   */
  playbackToken(
    stream: Pick<ManagedStream, 'streamId' | 'userId' | 'state'>,
    options: { replay?: boolean } = {},
  ): string | null {
    const signer = this.#o.playbackTokens;
    if (!signer) return null;
    const ended = END_PHASES.has(stream.state.phase) && !options.replay;
    const endsAt = ended ? this.#now() + (this.#o.endGraceMs ?? 60_000) : null;
    return signer.sign(stream.userId, stream.streamId, { endsAt });
  }

  /** The status a viewer sees now: every playback URL in it carries a fresh playback token (when on). */
  statusOf(
    stream: Pick<ManagedStream, 'streamId' | 'userId' | 'state' | 'outputs'> & {
      webrtcUrl?: string | null;
      recordings?: RecordingRecord[];
    },
  ): ManagedStreamStatus {
    const { status, hlsUrl, message } = stream.state.reported;
    const plain = hlsUrl ? withPublicBase(hlsUrl, this.#o.hlsPublicBaseUrl) : null;
    const token = plain ? this.playbackToken(stream) : null;
    const url = plain ? withPlaybackToken(plain, token) : null;
    // WHEP is the relay's own URL, never the HLS CDN's (a CDN cannot carry WebRTC); shown with the hlsUrl.
    const webrtcUrl = url && stream.webrtcUrl ? withPlaybackToken(stream.webrtcUrl, token) : null;
    // The relay serves the latest keyframe next to the playlist (relay thumbnails).
    const thumb = plain ? thumbnailUrlOf(plain) : null;
    const thumbnailUrl = thumb ? withPlaybackToken(thumb, token) : null;
    return {
      type: 'managed_stream_status',
      status,
      streamId: stream.streamId,
      // DASH over the same segments beside the playlist (relay dash/routes.ts), with the same token.
      ...(url ? { hlsUrl: url, dashUrl: dashUrlOf(url) ?? '' } : {}),
      ...(webrtcUrl ? { webrtcUrl } : {}),
      ...(thumbnailUrl ? { thumbnailUrl, previewUrl: thumbnailUrl } : {}),
      ...(message ? { message } : {}),
      ...(stream.outputs.length > 0 ? { outputs: stream.outputs } : {}),
      ...(stream.recordings && stream.recordings.length > 0
        ? { recordings: this.#recordingsWithToken(stream, stream.recordings) }
        : {}),
    };
  }

  /** A replay's playback token (PLAYBACK_AUTH=token), for a stream the cloud may have forgotten; else null. */
  replayToken(userId: string, streamId: string): string | null {
    return this.#o.playbackTokens?.sign(userId, streamId, { endsAt: null }) ?? null;
  }

  /** Replay URLs carry a playback token that outlives the stream (its TTL alone bounds it). */
  #recordingsWithToken(
    stream: Pick<ManagedStream, 'streamId' | 'userId' | 'state'>,
    recordings: RecordingRecord[],
  ): RecordingRecord[] {
    const token = this.playbackToken(stream, { replay: true });
    if (!token) return recordings;
    return recordings.map((r) => ({
      ...r,
      hlsUrl: withPlaybackToken(r.hlsUrl, token),
      mp4Url: withPlaybackToken(r.mp4Url, token),
      ...(r.thumbnailUrl ? { thumbnailUrl: withPlaybackToken(r.thumbnailUrl, token) } : {}),
    }));
  }

  /** A relay called (register or heartbeat), whether or not the store knew it or could answer: alive. */
  relayContact(relayId: string): void {
    this.#liveness.contact(relayId);
  }

  /** A relay deregistered: what this process heard from it no longer keeps its streams. */
  relayGone(relayId: string): void {
    this.#liveness.gone(relayId);
  }

  /** A relay of the seed's static list, by its relay id. */
  staticRelay(relayId: string): { rtmpUrl: string; hlsUrl: string } | undefined {
    return this.#static.get(relayId);
  }

  /** An app asks for the user's managed stream: it joins the live one, or one is created and placed. */
  async request(
    userId: string,
    packageName: string,
    destinations: readonly RestreamTarget[] = [],
    options: { recording?: 'automatic' | 'off' | undefined } = {},
  ): Promise<ManagedStreamStatus> {
    const asksRecording = options.recording === 'automatic';
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const existing = await this.#state.byUser(userId);
      if (existing) {
        const joined = await this.#join(existing.streamId, packageName, destinations, asksRecording);
        if (joined) return this.statusOf(viewOf(joined));
        continue; // it ended meanwhile: create one
      }
      const streamId = randomBytes(STREAM_ID_BYTES)
        .toString('base64url')
        .replace(/[^A-Za-z0-9]/g, 'x');
      const key = storeKey(userId, streamId);
      const placement = await this.#static.place(key, {
        now: this.#now(),
        reservationTtlMs: this.#o.reservationTtlMs ?? 30_000,
      });
      if (!placement)
        throw new ManagedStreamError(ErrorCodes.NO_RELAY_AVAILABLE, 'no relay has room for a new stream');
      const { state, effects } = begin(placement.relayId);
      const record: StreamRecord = {
        v: 0,
        streamId,
        userId,
        sessionId: randomBytes(6).toString('base64url'),
        viewers: [packageName],
        state,
        keepAlive: this.#tracker().snapshot(),
        retry: null,
        destinations:
          destinations.length > 0 ? [[packageName, destinations.slice(0, MAX_STREAM_DESTINATIONS)]] : [],
        outputs: [],
        createdAt: this.#now(),
        ...(asksRecording ? { recording: 'automatic' as const } : {}),
      };
      const other = await this.#state.create(record);
      if (other) {
        // Another app (maybe on another replica) created one while we placed: join that one.
        await this.#static.release(key, placement.relayId);
        continue;
      }
      this.#changed(record);
      this.#log.info({ userId, streamId, relayId: placement.relayId }, 'managed stream created');
      await this.#apply(record, effects);
      return this.statusOf(viewOf(this.#cache.get(streamId) ?? record));
    }
    throw new Error('managed stream request: too many concurrent changes');
  }

  /** An app stops watching; the last one leaving stops the glasses. */
  async stop(userId: string, packageName: string): Promise<void> {
    const existing = await this.#state.byUser(userId);
    if (!existing) return;
    await this.#act(existing.streamId, (r) => {
      if (!r.viewers.includes(packageName)) return null;
      r.viewers = r.viewers.filter((v) => v !== packageName);
      r.destinations = r.destinations.filter(([p]) => p !== packageName);
      if (r.viewers.length > 0) return [];
      return this.#transition(r, { type: 'last_viewer_left' }) ?? [];
    });
  }

  /** A message from the user's glasses (on whichever replica holds their socket). */
  async glassesMessage(userId: string, message: GlassesToCloud): Promise<void> {
    const existing = await this.#state.byUser(userId);
    if (!existing || (message.streamId && message.streamId !== existing.streamId)) return;
    if (message.type === 'keep_alive_ack') {
      await this.#act(existing.streamId, (r) => {
        const tracker = this.#tracker(r);
        if (!tracker.ack(message.ackId, this.#now())) return null;
        r.keepAlive = tracker.snapshot();
        r.glassesHeard = true;
        return [];
      });
      return;
    }
    const relayId = existing.state.relayId;
    if (message.status === 'reconnecting' && relayId !== null) void this.#suspect(relayId);
    const event: LifecycleEvent = {
      type: 'glasses_status',
      status: message.status,
      errorDetails: message.errorDetails,
      attempt: message.attempt,
      maxAttempts: message.maxAttempts,
    };
    await this.#act(existing.streamId, (r) => {
      r.glassesHeard = true;
      return this.#srtFallback(r, event) ?? this.#transition(r, event);
    });
  }

  /**
   * Glasses handed an SRT URL that report an error (UDP blocked on their network, or firmware without SRT):
   * once per stream, instead of ending it, mark the record (every replica then hands out RTMP for it) and
   * start them again on RTMP at the same relay; the phase does not change. Null when this is not that case.
   */
  #srtFallback(r: StreamRecord, event: LifecycleEvent): Effect[] | null {
    if (event.type !== 'glasses_status' || event.status !== 'error') return null;
    if (r.ingest !== 'srt' || r.srtFailed) return null;
    const { phase, relayId } = r.state;
    if (relayId === null || END_PHASES.has(phase) || phase === 'stopping') return null;
    r.srtFailed = true;
    this.#log.warn(
      { userId: r.userId, streamId: r.streamId, relayId, errorDetails: event.errorDetails },
      'glasses report an error on SRT: starting them again on RTMP',
    );
    return [{ kind: 'start_glasses', relayId }];
  }

  /** Glasses connected to this process: a start or stop held for them is sent now. */
  async glassesConnected(userId: string): Promise<void> {
    try {
      const held = await this.#state.takeCommand(userId);
      if (held && !this.#o.glasses.send(userId, held)) await this.#hold(userId, held);
    } catch (err) {
      this.#log.warn({ userId, err: (err as Error).message }, 'held glasses command not read');
    }
  }

  /** What the relay should push for this stream: every viewing app's destinations, each URL once. */
  async destinationsOf(userId: string, streamId: string): Promise<RestreamTarget[]> {
    const r = await this.#state.get(streamId);
    if (!r || r.userId !== userId) return [];
    const byUrl = new Map<string, RestreamTarget>();
    for (const [, list] of r.destinations) {
      for (const d of list) if (!byUrl.has(d.url)) byUrl.set(d.url, d);
    }
    return [...byUrl.values()].slice(0, MAX_STREAM_DESTINATIONS);
  }

  /**
   * The recording option of a stream for its relay: whether an app asked for a recording, and the managed
   * stream's start (the recording's name on every relay it visits). Null for a stream the cloud does not know.
   */
  async recordingOf(
    userId: string,
    streamId: string,
  ): Promise<{ mode: 'automatic' | 'off'; startedAt: number } | null> {
    const r = await this.#state.get(streamId);
    if (!r || r.userId !== userId) return null;
    return { mode: r.recording ?? 'off', startedAt: r.createdAt };
  }

  /** A relay uploaded (part of) a recording: apps hear its replay URLs with the current status. */
  async recordingReady(userId: string, streamId: string, recording: RecordingRecord): Promise<void> {
    await this.#act(streamId, (r) => {
      if (r.userId !== userId) return null;
      const others = (r.recordings ?? []).filter((x) => x.id !== recording.id);
      r.recordings = [...others, recording].slice(-20);
      return [{ kind: 'notify_apps', ...r.state.reported }];
    });
  }

  /** The relay reports its re-streaming outputs: apps hear the new list with the current status. */
  async restreamStatus(userId: string, streamId: string, outputs: RestreamOutputStatus[]): Promise<void> {
    await this.#act(streamId, (r) => {
      if (r.userId !== userId || JSON.stringify(r.outputs) === JSON.stringify(outputs)) return null;
      r.outputs = outputs;
      return [{ kind: 'notify_apps', ...r.state.reported }];
    });
  }

  /**
   * hls-ready from a relay (the relay routes' guard checked who sent it and the URL). Apps hear `active`
   * once the URL answers; resolves when the check is over.
   */
  async hlsReady(
    userId: string,
    streamId: string,
    relayId: string,
    hlsUrl: string,
    webrtcUrl?: string,
  ): Promise<void> {
    const r = await this.#state.get(streamId);
    if (!r || r.userId !== userId || r.state.relayId !== relayId) return;
    await this.#verify(r, relayId, hlsUrl, webrtcUrl);
  }

  /**
   * stream-ended from a relay (the publisher's reconnect window closed, or it was kicked). From a draining
   * relay it means the drain ended it: the stream moves instead of stopping (its apps still watch). With a
   * `refusal`, the relay refused the publish (an input it cannot use): the stream ends in error, wherever.
   */
  async relayStreamEnded(userId: string, streamId: string, relayId: string, refusal?: string): Promise<void> {
    const r = await this.#state.get(streamId);
    if (!r || r.userId !== userId) return;
    const relay = (await this.#o.store.liveRelays(this.#now())).find((x) => x.relayId === relayId);
    await this.#event(
      streamId,
      relay?.draining && !refusal
        ? { type: 'relay_lost', relayId }
        : { type: 'relay_stream_ended', relayId, ...(refusal ? { error: refusal } : {}) },
    );
  }

  /**
   * A relay said it drains (heartbeat): every stream on it moves now to a live relay (glasses told the new
   * URL, apps a new `active` once it plays), without waiting for the drain to end.
   */
  async relayDraining(relayId: string): Promise<void> {
    if (!(await this.#roomElsewhere(relayId))) return; // nowhere to go: it plays on where it is
    for (const r of await this.#state.all()) {
      if (r.state.relayId !== relayId) continue;
      this.#log.info({ streamId: r.streamId, relayId }, 'relay draining: moving the stream');
      await this.#event(r.streamId, { type: 'relay_lost', relayId });
    }
  }

  /**
   * Glasses could not publish to `relayId`: if the relay does not answer either, it is dead; it is
   * forgotten (a live one registers again at its next heartbeat) and its streams move now. A relay that
   * answers (the glasses' network blipped) keeps everything.
   */
  async #suspect(relayId: string): Promise<void> {
    if (this.#suspects.has(relayId) || this.#closed || this.#static.get(relayId)) return;
    this.#suspects.add(relayId);
    try {
      const relay = (await this.#o.store.liveRelays(this.#now())).find((x) => x.relayId === relayId);
      if (!relay) return; // already lost: the liveness check moves its streams
      const alive = await (this.#o.probeRelay ?? defaultProbeRelay)(relay.hlsUrl);
      if (alive || this.#closed) return;
      this.#log.warn({ relayId }, 'relay does not answer while its glasses fail to publish: lost');
      await this.#o.store.removeRelay(relayId);
      this.#liveness.gone(relayId);
      for (const r of await this.#state.all()) {
        if (r.state.relayId === relayId) await this.#event(r.streamId, { type: 'relay_lost', relayId });
      }
    } catch (err) {
      this.#log.warn({ relayId, err: (err as Error).message }, 'relay check after a failed publish failed');
    } finally {
      this.#suspects.delete(relayId);
    }
  }

  /**
   * Streams a relay reported (heartbeat) that it should end now: their managed stream ended, or moved to
   * another relay. A stream the cloud never managed is the relay's own business and stays.
   */
  async streamsToEnd(hb: Pick<HeartbeatRequest, 'relayId' | 'streams'>): Promise<StreamToEnd[]> {
    const out: StreamToEnd[] = [];
    for (const s of hb.streams) {
      if (s.state === 'ended') continue;
      const live = await this.#state.get(s.streamId);
      if (live && live.userId === s.userId) {
        if (live.state.relayId !== null && live.state.relayId !== hb.relayId)
          out.push({ userId: s.userId, streamId: s.streamId });
        continue;
      }
      if ((await this.#state.endedOn(s.userId, s.streamId)) === hb.relayId)
        out.push({ userId: s.userId, streamId: s.streamId });
    }
    return out;
  }

  /**
   * Stops the timers. On memory state every stream ends (nothing would remember it); on shared state
   * nothing ends: another replica, or this cloud's next start, carries on.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#relayTimer);
    clearInterval(this.#keepAliveTimer);
    this.#liveness.clear();
    for (const p of this.#probes.values()) p.abort.abort();
    this.#probes.clear();
    if (!this.#state.shared) {
      for (const r of await this.#state.all())
        await this.#event(r.streamId, { type: 'stop_requested', message: 'cloud stopping' });
    }
    this.#bus.off('message', this.#onBus);
  }

  // ------------------------------------------------------------------------------------------- acting

  /**
   * Loads the stream, lets `change` decide (null: nothing to do; else the effects, with the record
   * changed in place), saves it unless another replica changed it first (then again from a fresh load),
   * and carries out the effects. An ended stream is removed instead of saved. Resolves with the record as
   * saved, or null when the stream does not exist (or nothing changed: then the record as loaded).
   */
  async #act(streamId: string, change: (r: StreamRecord) => Effect[] | null): Promise<StreamRecord | null> {
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const r = await this.#state.get(streamId);
      if (!r) {
        this.#forget(streamId);
        return null;
      }
      const relayBefore = r.state.relayId;
      const effects = change(r);
      if (effects === null) {
        this.#remember(r);
        return r;
      }
      const ended = END_PHASES.has(r.state.phase);
      const saved = ended
        ? await this.#state.remove(r, relayBefore, ENDED_TTL_MS)
        : await this.#state.save(r);
      if (!saved) continue;
      if (ended) {
        this.#forget(streamId);
        this.#bus.publish({ kind: 'removed', streamId });
      } else this.#changed(r);
      await this.#apply(r, effects);
      return r;
    }
    this.#log.warn({ streamId }, 'managed stream: gave up after repeated concurrent changes');
    return null;
  }

  /** Runs a lifecycle event on the record: its effects, or null when refused. */
  #transition(r: StreamRecord, event: LifecycleEvent): Effect[] | null {
    const result = transition(r.state, event);
    if (!result.ok) {
      this.#log.debug({ streamId: r.streamId, ...result.refusal }, 'lifecycle event refused');
      return null;
    }
    r.state = result.state;
    return result.effects;
  }

  #event(streamId: string, event: LifecycleEvent): Promise<StreamRecord | null> {
    return this.#act(streamId, (r) => this.#transition(r, event));
  }

  async #join(
    streamId: string,
    packageName: string,
    destinations: readonly RestreamTarget[],
    record = false,
  ): Promise<StreamRecord | null> {
    return this.#act(streamId, (r) => {
      if (!r.viewers.includes(packageName)) r.viewers.push(packageName);
      // An app joining may ask for a recording: from the relay's next question on (a new relay, a restart).
      if (record) r.recording = 'automatic';
      r.destinations = r.destinations.filter(([p]) => p !== packageName);
      if (destinations.length > 0)
        r.destinations.push([packageName, destinations.slice(0, MAX_STREAM_DESTINATIONS)]);
      return [];
    });
  }

  async #apply(r: StreamRecord, effects: Effect[]): Promise<void> {
    for (const effect of effects) {
      try {
        await this.#carryOut(r, effect);
      } catch (err) {
        // The store is unreachable (only its calls throw here): log it, and try a placement or a start
        // again at the next relay check; a release is left to the reservation's expiry and the relay's
        // next heartbeat, which replaces what the store holds for it.
        const retry =
          effect.kind === 'place_relay' ? 'place' : effect.kind === 'start_glasses' ? 'start' : null;
        this.#log.warn(
          { streamId: r.streamId, effect: effect.kind, retry: retry !== null, err: (err as Error).message },
          'managed stream: effect failed',
        );
        if (retry) {
          await this.#act(r.streamId, (x) => {
            x.retry = retry;
            return [];
          }).catch((e: Error) => this.#log.warn({ err: e.message }, 'retry not recorded'));
        }
      }
    }
  }

  async #carryOut(r: StreamRecord, effect: Effect): Promise<void> {
    switch (effect.kind) {
      case 'notify_apps':
        this.#bus.publish({
          kind: 'status',
          who: { userId: r.userId, streamId: r.streamId, viewers: [...r.viewers] },
          status: this.statusOf(viewOf(r)),
        });
        break;
      case 'start_glasses':
        await this.#startGlasses(r, effect.relayId);
        break;
      case 'stop_glasses':
        await this.#toGlasses(
          r.userId,
          {
            type: 'stop_rtmp_stream',
            sessionId: r.sessionId,
            appId: 'MANAGED_STREAM',
            streamId: r.streamId,
            timestamp: this.#now(),
          },
          true,
        );
        break;
      case 'release_relay':
        await this.#static.release(storeKey(r.userId, r.streamId), effect.relayId);
        break;
      case 'place_relay': {
        const placement = await this.#static.place(storeKey(r.userId, r.streamId), {
          now: this.#now(),
          reservationTtlMs: this.#o.reservationTtlMs ?? 30_000,
        });
        if (placement) {
          await this.#act(r.streamId, (x) => {
            x.placeFailedSince = null;
            return this.#transition(x, { type: 'replaced', relayId: placement.relayId });
          });
          break;
        }
        // No relay has room now: the stream waits (reconnecting) and placement is tried at every relay
        // check, for a while; a relay that frees room or a new one takes it.
        const now = this.#now();
        const since = r.placeFailedSince ?? now;
        if (now - since >= PLACE_PATIENCE_MS) {
          await this.#event(r.streamId, { type: 'timeout' });
          break;
        }
        await this.#act(r.streamId, (x) => {
          x.retry = 'place';
          x.placeFailedSince = since;
          return [];
        });
        break;
      }
      case 'verify_hls':
        // Not awaited: the check may take seconds, and the caller (a glasses message) must not wait.
        void this.#verify(r, effect.relayId, effect.hlsUrl);
        break;
    }
  }

  async #startGlasses(r: StreamRecord, relayId: string): Promise<void> {
    const relay =
      this.#static.get(relayId) ??
      (await this.#o.store.liveRelays(this.#now())).find((x) => x.relayId === relayId);
    if (!relay) {
      await this.#event(r.streamId, { type: 'relay_lost', relayId });
      return;
    }
    const token = this.#o.tokenSecret
      ? await signPublishToken(this.#o.tokenSecret, {
          userId: r.userId,
          streamId: r.streamId,
          relayId,
          ttlSeconds: PUBLISH_TOKEN_TTL_SECONDS,
        })
      : undefined;
    const url = this.#ingestUrl(relayId, relay, r, token);
    const ingest = url.startsWith('srt:') ? 'srt' : url.startsWith('rtmp') ? 'rtmp' : 'whip';
    if ((r.ingest ?? 'rtmp') !== ingest) {
      // Saved before the glasses hear it, so their error on SRT finds the record saying SRT (any replica).
      await this.#act(r.streamId, (x) => {
        x.ingest = ingest;
        return [];
      });
    }
    // The seed's command; the glasses gateway speaks `start_stream` to glasses that asked for it.
    const sent = await this.#toGlasses(
      r.userId,
      {
        type: 'start_rtmp_stream',
        sessionId: r.sessionId,
        rtmpUrl: url,
        appId: 'MANAGED_STREAM',
        streamId: r.streamId,
        timestamp: this.#now(),
      },
      true,
    );
    if (!sent) this.#log.info({ userId: r.userId, streamId: r.streamId }, 'glasses not on this replica');
  }

  /**
   * The publish URL for GLASSES_INGEST on this relay: SRT or WHIP when the relay announced that base (only
   * current firmware takes those, through `start_stream`), else RTMP; RTMP for a stream whose glasses failed
   * on SRT.
   */
  #ingestUrl(
    relayId: string,
    relay: { rtmpUrl: string; srtUrl?: string | undefined; whipUrl?: string | undefined },
    r: StreamRecord,
    token: string | undefined,
  ): string {
    const ingest = this.#o.glassesIngest ?? 'rtmp';
    if (ingest === 'srt' && relay.srtUrl && !r.srtFailed) {
      const passphrase = this.#o.srtPassphrase?.(publishKey(r.userId, r.streamId)) ?? null;
      const url =
        srtPublishUrl(relay.srtUrl, r.userId, r.streamId, token, { passphrase }) ??
        // A JWT pushes long ids past libsrt's 512 bytes: the compact form of the same grant fits them.
        (token && this.#o.tokenSecret
          ? srtPublishUrl(
              relay.srtUrl,
              r.userId,
              r.streamId,
              signCompactPublishToken(this.#o.tokenSecret, {
                userId: r.userId,
                streamId: r.streamId,
                relayId,
                ttlSeconds: PUBLISH_TOKEN_TTL_SECONDS,
              }),
              { passphrase },
            )
          : null);
      if (url) return url;
      // Even the compact form does not fit (ids longer than the naming contract allows): RTMP it is.
      this.#log.warn({ streamId: r.streamId }, 'SRT stream id too long for libsrt: handing out RTMP');
    }
    if (ingest === 'whip' && relay.whipUrl) return whipPublishUrl(relay.whipUrl, r.userId, r.streamId, token);
    return rtmpPublishUrl(relay.rtmpUrl, r.userId, r.streamId, token);
  }

  /**
   * Sends to the glasses: through this process's socket, else over the bus to the replica holding it. A
   * start or stop (`hold`) is also kept until the glasses connect, for glasses with no socket anywhere.
   */
  async #toGlasses(userId: string, message: CloudToGlasses, hold: boolean): Promise<boolean> {
    if (this.#o.glasses.send(userId, message)) return true;
    if (hold) await this.#hold(userId, message);
    if (this.#state.shared) this.#bus.publish({ kind: 'glasses', userId, message, from: this.#id });
    return false;
  }

  async #hold(userId: string, message: CloudToGlasses): Promise<void> {
    try {
      await this.#state.holdCommand(userId, message, HELD_COMMAND_TTL_MS);
    } catch (err) {
      this.#log.warn({ userId, err: (err as Error).message }, 'glasses command not held');
    }
  }

  /**
   * Checks the URL answers, then feeds `hls_ready` (if the stream is still on that relay), with the WHEP URL
   * the relay announced beside it (`webrtcUrl`; undefined keeps what the record has: a re-check).
   */
  async #verify(record: StreamRecord, relayId: string, hlsUrl: string, webrtcUrl?: string): Promise<void> {
    const { streamId } = record;
    if (this.#probes.get(streamId)?.url === hlsUrl && webrtcUrl === undefined) return;
    if (this.#closed) return;
    this.#probes.get(streamId)?.abort.abort();
    const probe = { url: hlsUrl, abort: new AbortController() };
    this.#probes.set(streamId, probe);
    let answers = false;
    try {
      // With the playback token an app would get: a relay with PLAYBACK_AUTH=token refuses it otherwise.
      answers = await this.#probeHls(
        withPlaybackToken(hlsUrl, this.playbackToken(record)),
        probe.abort.signal,
      );
    } catch (err) {
      this.#log.warn({ streamId, err: (err as Error).message }, 'playlist check failed');
    }
    if (this.#probes.get(streamId) !== probe) return; // replaced by a newer check, or closed
    this.#probes.delete(streamId);
    if (!answers) {
      this.#log.warn({ streamId, relayId }, 'announced playlist never answered');
      return;
    }
    await this.#act(streamId, (r) => {
      if (r.state.relayId !== relayId) return null;
      const webrtcChanged = webrtcUrl !== undefined && r.webrtc?.url !== webrtcUrl;
      if (webrtcUrl !== undefined) r.webrtc = { relayId, url: webrtcUrl };
      const effects = this.#transition(r, { type: 'hls_ready', relayId, hlsUrl });
      // Already active on that URL (a repeated hls-ready): apps still hear a new WHEP URL.
      if (effects === null && webrtcChanged && r.state.phase === 'active')
        return [{ kind: 'notify_apps', ...r.state.reported }];
      return effects;
    });
  }

  #tracker(r?: StreamRecord): KeepAliveTracker {
    const options = { ackTimeoutMs: this.#o.ackTimeoutMs, maxMissed: this.#o.maxMissedAcks };
    return r ? KeepAliveTracker.restore(options, r.keepAlive) : new KeepAliveTracker(options);
  }

  // ----------------------------------------------------------------------------------- once-only timers

  /** Every stream's keep-alive: on the lease holder only. */
  async #keepAliveRound(): Promise<void> {
    if (!this.#lease.held || this.#closed) return;
    try {
      for (const r of await this.#state.all()) await this.#keepAlive(r.streamId);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'keep-alive round failed (store unreachable)');
    }
  }

  async #keepAlive(streamId: string): Promise<void> {
    const now = this.#now();
    let ended = false;
    let ackId = '';
    let waiting = false;
    const r = await this.#act(streamId, (x) => {
      // Not before the glasses know the stream (see StreamRecord.glassesHeard); the start's own timeout
      // ends a stream whose glasses never answer.
      if (x.state.phase === 'initializing' && !x.glassesHeard) {
        waiting = true;
        return null;
      }
      const tracker = this.#tracker(x);
      ended = tracker.tick(now).ended;
      if (!ended) ackId = tracker.next(now);
      x.keepAlive = tracker.snapshot();
      return [];
    });
    if (!r || waiting) return;
    if (ended) {
      this.#log.warn({ streamId }, 'glasses stopped answering keep-alives');
      await this.#event(streamId, { type: 'keepalive_missed_limit' });
      return;
    }
    await this.#toGlasses(r.userId, { type: 'keep_rtmp_stream_alive', streamId, ackId }, false);
  }

  /**
   * The liveness timer's work (public for tests): notices that this process was not running, and on the
   * lease holder moves the streams of lost relays and retries what a failed store call left undone.
   */
  async checkRelays(): Promise<void> {
    const may = this.#liveness.tick();
    if (this.#checking || this.#closed) return;
    this.#checking = true;
    try {
      await this.#keepState();
      if (may && this.#lease.held) await this.#moveLostStreams();
    } catch (err) {
      this.#log.error({ err }, 'relay check failed');
    } finally {
      this.#checking = false;
    }
  }

  /** Whether a live relay other than `relayId` that does not drain has room for one more stream. */
  async #roomElsewhere(relayId: string): Promise<boolean> {
    const relays = await this.#o.store.liveRelays(this.#now());
    return relays.some((x) => x.relayId !== relayId && !x.draining && x.streams + x.reserved < x.maxStreams);
  }

  /** A state store that lost everything (Redis restarted empty) gets back every stream this process knows. */
  async #keepState(): Promise<void> {
    let intact: boolean;
    try {
      intact = await this.#state.intact();
    } catch {
      return; // unreachable: asked again at the next check
    }
    if (intact) return;
    const restored = await this.#state.restore([...this.#cache.values()]);
    if (this.#cache.size > 0)
      this.#log.warn(
        { restored, known: this.#cache.size },
        'the state store lost its data: streams put back',
      );
  }

  /** Places again the streams of relays neither the store nor this process heard from lately. */
  async #moveLostStreams(): Promise<void> {
    const records = await this.#state.all();
    if (records.length === 0) return;
    let live: Set<string>;
    let draining: Set<string>;
    try {
      const relays = await this.#o.store.liveRelays(this.#now());
      live = new Set(relays.map((r) => r.relayId));
      draining = new Set(relays.filter((r) => r.draining).map((r) => r.relayId));
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'store unreachable: relay liveness not checked');
      return;
    }
    for (const r of records) {
      const relayId = r.state.relayId;
      if (
        relayId &&
        !live.has(relayId) &&
        !this.#liveness.heardLately(relayId) &&
        !this.#static.get(relayId)
      ) {
        this.#log.warn({ streamId: r.streamId, relayId }, 'relay lost: placing the stream again');
        await this.#event(r.streamId, { type: 'relay_lost', relayId });
      } else if (relayId && draining.has(relayId) && (await this.#roomElsewhere(relayId))) {
        // A move its drain heartbeat started and could not finish (no room then): tried again.
        await this.#event(r.streamId, { type: 'relay_lost', relayId });
      } else if (r.retry) {
        const retry = r.retry;
        const cleared = await this.#act(r.streamId, (x) => {
          if (x.retry !== retry) return null;
          x.retry = null;
          return [];
        });
        if (!cleared) continue;
        if (retry === 'place' && cleared.state.phase === 'reconnecting' && cleared.state.relayId === null)
          await this.#apply(cleared, [{ kind: 'place_relay' }]);
        else if (retry === 'start' && cleared.state.relayId !== null)
          await this.#apply(cleared, [{ kind: 'start_glasses', relayId: cleared.state.relayId }]);
      }
    }
  }

  // ---------------------------------------------------------------------------------------- the cache

  #changed(r: StreamRecord): void {
    this.#remember(r);
    this.#bus.publish({ kind: 'changed', record: r });
  }

  #remember(r: StreamRecord): void {
    const cached = this.#cache.get(r.streamId);
    if (cached && cached.v > r.v) return;
    this.#cache.set(r.streamId, r);
    this.#cacheByUser.set(r.userId, r.streamId);
  }

  #forget(streamId: string): void {
    const r = this.#cache.get(streamId);
    this.#cache.delete(streamId);
    if (r && this.#cacheByUser.get(r.userId) === streamId) this.#cacheByUser.delete(r.userId);
    this.#probes.get(streamId)?.abort.abort();
    this.#probes.delete(streamId);
  }

  /** What the bus brings (every replica's messages, this one's included). */
  #heard(m: BusMessage): void {
    switch (m.kind) {
      case 'status':
        this.safeEmit('status', m.who, m.status);
        break;
      case 'changed':
        if (m.record?.streamId) this.#remember(m.record);
        break;
      case 'removed':
        this.#forget(m.streamId);
        break;
      case 'glasses':
        if (m.from === this.#id) break;
        // The glasses are on this replica: send it, and drop the copy held for glasses with no socket.
        if (this.#o.glasses.send(m.userId, m.message) && m.message.type !== 'keep_rtmp_stream_alive')
          void this.#state
            .takeCommand(m.userId)
            .catch((err: Error) => this.#log.debug({ err: err.message }, 'held command not dropped'));
        break;
    }
  }
}
