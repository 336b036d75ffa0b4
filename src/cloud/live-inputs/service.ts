/**
 * Live inputs (issue 22): a stream identity with placement, publish tokens and statuses like a managed
 * stream, without the glasses. The routes call create/get/update/delete and the outputs' methods; the relay
 * API's callbacks (`relay-hooks.ts`) feed heartbeats, stream ends and re-stream statuses in, and ask which
 * destinations to push and which streams to end.
 *
 * - **Identity.** `uid` (32 hex, like Cloudflare's) is the streamId; `meta.userId`, else the configured
 *   default (the account id), is the userId. So the publish URL, the HLS path and the store key are the
 *   ones every other stream has.
 * - **Placement.** Created inputs are placed like a managed start (a reservation on the least-loaded relay).
 *   Reading one checks the placement: a relay that died or drains is replaced by a new one (a publish live
 *   on a relay keeps that relay), so GET answers the URLs of a relay that takes the publish now.
 * - **Tokens.** The stream key's publish token is signed as of the placement time, so it is the same at
 *   every GET until the input moves (or the token is half through its 30 days: then it is placed anew).
 * - **Status** comes from what relays report (heartbeats with stream stats, stream-ended), kept beside the
 *   record, so every replica answers the same.
 * - **Outputs** are the relay's re-stream destinations for that stream (it asks at start and with every
 *   heartbeat): enabled ones are pushed, named by their uid so the pushers' reports map back to them.
 * - **Delete** removes everything; a stream still live gets ended by its relay at its next heartbeat.
 * - **Webhooks**: the publish connecting (`publishing` where it was not) and going away (reconnecting or
 *   ended after publishing) are told to `notify`, where the heartbeat or stream end is heard.
 * - **Recording** (`recording.mode`, `deleteRecordingAfterDays`) is stored and answered, and `recordingOf`
 *   hands it to whoever starts recordings (issue "recordings"; not wired here yet).
 */
import { randomBytes } from 'node:crypto';
import { publishKey, storeKey } from '../../contracts/keys.ts';
import type { HeartbeatRequest, StreamEventRequest, StreamToEnd } from '../../contracts/relay-api.ts';
import { ErrorCodes, RelayError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { StaticRelays } from '../static-relays.ts';
import type { CloudStore } from '../store.ts';
import type { RestreamOutputRecord } from '../stream-state.ts';
import { MAX_TTL_SECONDS, signCompactPublishToken, signPublishToken } from '../tokens.ts';
import {
  type LiveInput,
  type LiveInputBody,
  type Output,
  type OutputCreateBody,
  UID_PATTERN,
} from './schemas.ts';
import type {
  ConnectionReport,
  LiveInputRecord,
  LiveInputStore,
  RecordingOptions,
  WebhookConfig,
} from './state.ts';
import { destinationUrl, liveInputView, outputView, type RelayBases } from './view.ts';
import type { LiveInputEvent } from './webhooks.ts';

export interface LiveInputsOptions {
  store: LiveInputStore;
  /** Relays the cloud knows (live ones, with their bases). */
  relays: Pick<CloudStore, 'liveRelays'>;
  /** Placement over the store (and the seed's static list). */
  placement: Pick<StaticRelays, 'place' | 'release' | 'get'>;
  /** The userId of inputs whose meta names none (CLOUD_ACCOUNT_ID). */
  defaultUserId: string;
  /** PUBLISH_TOKEN_SECRET; null: publish auth is off, stream keys carry no token. */
  tokenSecret: string | null;
  srtPassphrase?: (publishKey: string) => string | null;
  hlsPublicBaseUrl?: string | undefined;
  /** A relay report older than this no longer says connected (RELAY_EXPIRY_SECONDS). */
  relayExpiryMs: number;
  reservationTtlMs?: number;
  log: Logger;
  now?: () => number;
  /** Inputs kept at most (default 10,000). */
  maxInputs?: number;
  /** Tells the account's webhook (webhooks.ts) that an input's publish connected or went away. */
  notify?: (uid: string, event: LiveInputEvent) => void;
}

/** Outputs per input at most: what a relay pushes per stream by default. */
export const MAX_OUTPUTS = 5;
/** How long a relay is told to end a deleted input's stream (it reports it at every heartbeat until then). */
const ENDED_TTL_MS = 10 * 60_000;
/** Saves refused as stale before an act gives up. */
const MAX_CONFLICTS = 8;
const TOKEN_TTL_SECONDS = MAX_TTL_SECONDS;

const DEFAULT_RECORDING: RecordingOptions = {
  mode: 'off',
  timeoutSeconds: 0,
  requireSignedURLs: false,
  allowedOrigins: [],
  hideLiveViewerCount: false,
};

const newUid = (): string => randomBytes(16).toString('hex');

const notFound = (): RelayError => new RelayError(ErrorCodes.LIVE_INPUT_NOT_FOUND, 'live input not found');

export class LiveInputs {
  readonly #o: LiveInputsOptions;
  readonly #store: LiveInputStore;
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(options: LiveInputsOptions) {
    this.#o = options;
    this.#store = options.store;
    this.#log = options.log.child({ component: 'live-inputs' });
    this.#now = options.now ?? Date.now;
  }

  // ------------------------------------------------------------------------------------------- the API

  async create(body: LiveInputBody): Promise<LiveInput> {
    if ((await this.#store.count()) >= (this.#o.maxInputs ?? 10_000))
      throw new RelayError(ErrorCodes.LIVE_INPUT_LIMIT_REACHED, 'too many live inputs: delete some first');
    const now = this.#now();
    const meta = body.meta ?? {};
    const userId = typeof meta.userId === 'string' ? meta.userId : this.#o.defaultUserId;
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const uid = newUid();
      const placement = await this.#o.placement.place(storeKey(userId, uid), {
        now,
        reservationTtlMs: this.#o.reservationTtlMs ?? 30_000,
      });
      if (!placement)
        throw new RelayError(ErrorCodes.NO_RELAY_AVAILABLE, 'no relay has room for a new live input');
      const record: LiveInputRecord = {
        v: 0,
        uid,
        userId,
        created: now,
        modified: now,
        meta,
        enabled: body.enabled ?? true,
        ...(body.defaultCreator !== undefined ? { defaultCreator: body.defaultCreator } : {}),
        deleteRecordingAfterDays: body.deleteRecordingAfterDays ?? null,
        recording: { ...DEFAULT_RECORDING, ...body.recording },
        relayId: placement.relayId,
        placedAt: now,
        outputs: [],
      };
      if (!(await this.#store.create(record))) continue; // 128 random bits taken: draw again
      this.#log.info({ uid, userId, relayId: placement.relayId }, 'live input created');
      return this.#view(record);
    }
    throw new Error('live input: no free uid');
  }

  async list(): Promise<LiveInputRecord[]> {
    return (await this.#store.all()).sort((a, b) => a.created - b.created || a.uid.localeCompare(b.uid));
  }

  async get(uid: string): Promise<LiveInput> {
    const r = await this.#load(uid);
    return this.#view(await this.#placed(r));
  }

  async update(uid: string, body: LiveInputBody): Promise<LiveInput> {
    const r = await this.#change(uid, (x) => {
      if (body.meta !== undefined) {
        if (typeof body.meta.userId === 'string' && body.meta.userId !== x.userId)
          throw new RelayError(
            ErrorCodes.LIVE_INPUT_BAD_REQUEST,
            'meta.userId of a live input cannot change',
          );
        x.meta = body.meta;
      }
      if (body.recording !== undefined) x.recording = { ...x.recording, ...body.recording };
      if (body.deleteRecordingAfterDays !== undefined)
        x.deleteRecordingAfterDays = body.deleteRecordingAfterDays;
      if (body.defaultCreator !== undefined) x.defaultCreator = body.defaultCreator;
      if (body.enabled !== undefined) x.enabled = body.enabled;
    });
    return this.#view(await this.#placed(r));
  }

  /** Removes the input, its reports and its placement; a live stream is ended by its relay. */
  async delete(uid: string): Promise<void> {
    const r = await this.#load(uid);
    const key = storeKey(r.userId, r.uid);
    const { connection } = await this.#store.reports(uid);
    const live = connection && connection.state !== 'ended' ? connection.relayId : null;
    if (!(await this.#store.remove(uid, live ? { key, relayId: live, ttlMs: ENDED_TTL_MS } : undefined)))
      throw notFound();
    if (r.relayId) await this.#o.placement.release(key, r.relayId);
    this.#log.info({ uid, live: live !== null }, 'live input deleted');
  }

  async addOutput(uid: string, body: OutputCreateBody): Promise<Output> {
    const outputUid = newUid();
    const r = await this.#change(uid, (x) => {
      if (x.outputs.length >= MAX_OUTPUTS)
        throw new RelayError(
          ErrorCodes.LIVE_INPUT_LIMIT_REACHED,
          `at most ${MAX_OUTPUTS} outputs per live input`,
        );
      x.outputs.push({
        uid: outputUid,
        url: body.url,
        streamKey: body.streamKey,
        enabled: body.enabled ?? true,
      });
    });
    const o = r.outputs.find((x) => x.uid === outputUid);
    if (!o) throw notFound();
    // Only the host: the key is the secret, and a URL may carry credentials of its own.
    this.#log.info({ uid, output: outputUid, host: new URL(o.url).host }, 'live input output added');
    return outputView(o, null);
  }

  async outputs(uid: string): Promise<Output[]> {
    const r = await this.#load(uid);
    const reports = await this.#store.reports(uid);
    return r.outputs.map((o) => outputView(o, reports));
  }

  async updateOutput(uid: string, outputUid: string, enabled: boolean): Promise<Output> {
    const r = await this.#change(uid, (x) => {
      const o = x.outputs.find((y) => y.uid === outputUid);
      if (!o) throw new RelayError(ErrorCodes.LIVE_INPUT_OUTPUT_NOT_FOUND, 'output not found');
      o.enabled = enabled;
    });
    const o = r.outputs.find((x) => x.uid === outputUid);
    if (!o) throw new RelayError(ErrorCodes.LIVE_INPUT_OUTPUT_NOT_FOUND, 'output not found');
    return outputView(o, await this.#store.reports(uid));
  }

  async deleteOutput(uid: string, outputUid: string): Promise<void> {
    await this.#change(uid, (x) => {
      const before = x.outputs.length;
      x.outputs = x.outputs.filter((y) => y.uid !== outputUid);
      if (x.outputs.length === before)
        throw new RelayError(ErrorCodes.LIVE_INPUT_OUTPUT_NOT_FOUND, 'output not found');
    });
  }

  /** The account's webhook (Cloudflare's `/stream/webhook`). */
  async webhook(): Promise<WebhookConfig> {
    const w = await this.#store.webhook();
    if (!w) throw new RelayError(ErrorCodes.LIVE_INPUT_WEBHOOK_NOT_FOUND, 'no webhook is set');
    return w;
  }

  /** Sets the webhook URL; the signing secret is made once and kept while the webhook exists. */
  async setWebhook(notificationUrl: string): Promise<WebhookConfig> {
    const secret = (await this.#store.webhook())?.secret ?? randomBytes(16).toString('hex');
    const w: WebhookConfig = { notificationUrl, secret, modified: this.#now() };
    await this.#store.setWebhook(w);
    this.#log.info({ host: new URL(notificationUrl).host }, 'live input webhook set');
    return w;
  }

  async deleteWebhook(): Promise<void> {
    await this.webhook();
    await this.#store.setWebhook(null);
  }

  /** The recording options of a live input's stream, for whoever starts recordings; null: not a live input. */
  async recordingOf(
    userId: string,
    streamId: string,
  ): Promise<{ mode: 'off' | 'automatic'; deleteAfterDays: number | null } | null> {
    const r = await this.#input(userId, streamId);
    return r ? { mode: r.recording.mode, deleteAfterDays: r.deleteRecordingAfterDays } : null;
  }

  // ------------------------------------------------------------------------------ what relays report

  /** Every live input a heartbeat lists gets the relay's word on its publish (state, stats). */
  async heartbeat(hb: HeartbeatRequest): Promise<void> {
    const at = this.#now();
    for (const s of hb.streams) {
      if (!(await this.#input(s.userId, s.streamId))) continue;
      await this.#report(s.streamId, {
        relayId: hb.relayId,
        state: s.state,
        at,
        ...(s.stats ? { stats: s.stats } : {}),
      });
    }
  }

  /** Stores a relay's report, and tells the webhook when the publish connected or went away. */
  async #report(uid: string, report: ConnectionReport): Promise<void> {
    const before = this.#o.notify ? (await this.#store.reports(uid)).connection : null;
    await this.#store.setConnection(uid, report);
    if (!this.#o.notify) return;
    const was =
      before !== null && before.state === 'publishing' && report.at - before.at <= this.#o.relayExpiryMs;
    const is = report.state === 'publishing';
    if (was !== is) this.#o.notify(uid, is ? 'live_input.connected' : 'live_input.disconnected');
  }

  /** The relay ended the stream (publisher gone past the reconnect window, or told to end it). */
  async streamEnded(e: StreamEventRequest): Promise<void> {
    const key = storeKey(e.userId, e.streamId);
    if ((await this.#store.endedOn(key)) === e.relayId) await this.#store.forgetEnded(key);
    const r = await this.#input(e.userId, e.streamId);
    if (!r) return;
    const { connection } = await this.#store.reports(r.uid);
    if (connection && connection.relayId !== e.relayId) return; // it moved on: that relay's word is old
    await this.#report(r.uid, { relayId: e.relayId, state: 'ended', at: this.#now() });
  }

  /** hls-ready (the relay guard checked the sender and its URLs): the DASH and WHEP URLs it announced. */
  async hlsReady(e: {
    relayId: string;
    userId: string;
    streamId: string;
    dashUrl?: string;
    webrtcUrl?: string | undefined;
  }): Promise<void> {
    if (!(await this.#input(e.userId, e.streamId))) return;
    await this.#store.setPlayback(e.streamId, {
      relayId: e.relayId,
      ...(e.dashUrl ? { dashUrl: e.dashUrl } : {}),
      ...(e.webrtcUrl ? { webrtcUrl: e.webrtcUrl } : {}),
    });
  }

  async restreamStatus(userId: string, streamId: string, outputs: RestreamOutputRecord[]): Promise<boolean> {
    if (!(await this.#input(userId, streamId))) return false;
    await this.#store.setOutputs(streamId, outputs);
    return true;
  }

  /** What the relay should push for this stream: the enabled outputs; null when it is no live input. */
  async destinations(userId: string, streamId: string): Promise<{ url: string; name: string }[] | null> {
    const r = await this.#input(userId, streamId);
    if (!r) return null;
    return r.outputs.filter((o) => o.enabled).map((o) => ({ url: destinationUrl(o), name: o.uid }));
  }

  /** Streams of a heartbeat to end now: live inputs deleted or disabled. */
  async streamsToEnd(hb: Pick<HeartbeatRequest, 'relayId' | 'streams'>): Promise<StreamToEnd[]> {
    const out: StreamToEnd[] = [];
    for (const s of hb.streams) {
      if (s.state === 'ended' || !UID_PATTERN.test(s.streamId)) continue;
      const r = await this.#input(s.userId, s.streamId);
      if (r) {
        if (!r.enabled) out.push({ userId: s.userId, streamId: s.streamId });
      } else if ((await this.#store.endedOn(storeKey(s.userId, s.streamId))) === hb.relayId) {
        out.push({ userId: s.userId, streamId: s.streamId });
      }
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------ inside

  /** The live input a relay's stream is, or null. */
  async #input(userId: string, streamId: string): Promise<LiveInputRecord | null> {
    if (!UID_PATTERN.test(streamId)) return null;
    const r = await this.#store.get(streamId);
    return r && r.userId === userId ? r : null;
  }

  async #load(uid: string): Promise<LiveInputRecord> {
    const r = UID_PATTERN.test(uid) ? await this.#store.get(uid) : null;
    if (!r) throw notFound();
    return r;
  }

  /** Loads, changes (the callback may throw a refusal), saves unless someone came first (then again). */
  async #change(uid: string, change: (r: LiveInputRecord) => void): Promise<LiveInputRecord> {
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const r = await this.#load(uid);
      change(r);
      r.modified = this.#now();
      if (await this.#store.save(r)) return r;
    }
    throw new Error('live input: too many concurrent changes');
  }

  /** The relay the input should name now. */
  async #placed(r: LiveInputRecord): Promise<LiveInputRecord> {
    const now = this.#now();
    const relays = await this.#o.relays.liveRelays(now);
    const byId = (id: string | null): RelayBases | undefined =>
      id === null ? undefined : (this.#o.placement.get(id) ?? relays.find((x) => x.relayId === id));
    const { connection } = await this.#store.reports(r.uid);
    const liveOn =
      connection && connection.state !== 'ended' && now - connection.at <= this.#o.relayExpiryMs
        ? connection.relayId
        : null;
    const current = relays.find((x) => x.relayId === r.relayId);
    const tokenOld = now - r.placedAt > (TOKEN_TTL_SECONDS * 1000) / 2;
    let relayId: string | null = r.relayId;
    if (liveOn && byId(liveOn))
      relayId = liveOn; // the publish is there: its URLs are those
    else if (byId(r.relayId) && !current?.draining && !tokenOld) return r;
    else {
      const key = storeKey(r.userId, r.uid);
      if (r.relayId && current?.draining) await this.#o.placement.release(key, r.relayId);
      const placement = await this.#o.placement.place(key, {
        now,
        reservationTtlMs: this.#o.reservationTtlMs ?? 30_000,
      });
      relayId = placement?.relayId ?? (current ? r.relayId : null);
    }
    if (relayId === r.relayId && !tokenOld) return r;
    const before = r.relayId;
    r.relayId = relayId;
    r.placedAt = now;
    if (!(await this.#store.save(r))) return this.#load(r.uid); // someone else placed it: theirs
    this.#log.info({ uid: r.uid, from: before, to: relayId }, 'live input placed again');
    return r;
  }

  async #view(r: LiveInputRecord): Promise<LiveInput> {
    const relays = r.relayId ? await this.#o.relays.liveRelays(this.#now()) : [];
    const relay: RelayBases | null =
      r.relayId === null
        ? null
        : (this.#o.placement.get(r.relayId) ?? relays.find((x) => x.relayId === r.relayId) ?? null);
    const grant = relay
      ? { userId: r.userId, streamId: r.uid, relayId: relay.relayId, ttlSeconds: TOKEN_TTL_SECONDS }
      : null;
    const secret = this.#o.tokenSecret;
    const token = grant && secret ? await signPublishToken(secret, grant, r.placedAt) : undefined;
    const compactToken = grant && secret ? signCompactPublishToken(secret, grant, r.placedAt) : undefined;
    return liveInputView(r, {
      relay,
      reports: await this.#store.reports(r.uid),
      token,
      compactToken,
      srtPassphrase: this.#o.srtPassphrase?.(publishKey(r.userId, r.uid)) ?? null,
      hlsPublicBaseUrl: this.#o.hlsPublicBaseUrl,
      now: this.#now(),
      staleMs: this.#o.relayExpiryMs,
    });
  }
}
