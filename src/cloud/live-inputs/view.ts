/**
 * A live input as the API answers it (pure): the stored record, the relay it is placed on and what relays
 * reported, turned into Cloudflare's shape. The ingest URLs are that relay's: `rtmps` is our publish URL
 * split where Cloudflare splits it (`url` ends with `/`, `url + streamKey` is the whole publish URL with its
 * token), `srt` the relay's SRT base with the stream id and passphrase our SRT ingest expects, `webRTC` (WHIP)
 * and `webRTCPlayback` (WHEP) only when the relay announced a WHIP base (its WebRTC is on); `hls` always
 * (additive); `dash` (additive) and a WHEP URL once the relay announced them with hls-ready (relays send
 * an empty `dashUrl` until DASH lands).
 */
import { hlsPath } from '../../contracts/keys.ts';
import { srtPublishStreamId } from '../../contracts/srt.ts';
import { hlsPlaylistUrl, rtmpPublishUrl, whipPublishUrl, withPublicBase } from '../../contracts/urls.ts';
import type { Connection, LiveInput, Output } from './schemas.ts';
import type { LiveInputRecord, LiveInputReports, OutputRecord } from './state.ts';

/** A relay's announced bases. */
export interface RelayBases {
  relayId: string;
  rtmpUrl: string;
  hlsUrl: string;
  srtUrl?: string | undefined;
  whipUrl?: string | undefined;
}

export interface ViewContext {
  relay: RelayBases | null;
  reports: LiveInputReports;
  /** The publish token for that relay; undefined when publish auth is off. */
  token: string | undefined;
  /** The same grant's compact form, for SRT stream ids a JWT would push past libsrt's 512 bytes. */
  compactToken?: string | undefined;
  srtPassphrase: string | null;
  hlsPublicBaseUrl?: string | undefined;
  now: number;
  /** A report older than this (ms) no longer says connected: its relay went silent. */
  staleMs: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const trim = (base: string): string => base.replace(/\/+$/, '');

/** `rtmps {url, streamKey}`: `url` up to and with the last `/`, `streamKey` the rest (uid and token). */
export function splitPublishUrl(
  rtmpBase: string,
  userId: string,
  uid: string,
  token: string | undefined,
): { url: string; streamKey: string } {
  const whole = rtmpPublishUrl(rtmpBase, userId, uid, token);
  const at = rtmpPublishUrl(rtmpBase, userId, uid).length - uid.length;
  return { url: whole.slice(0, at), streamKey: whole.slice(at) };
}

/** A secret shown by its last four characters at most (none of a short one). */
export function maskKey(key: string): string {
  return key.length >= 12 ? `****${key.slice(-4)}` : '****';
}

/** The connection state a report means now. */
export function connectionOf(reports: LiveInputReports, now: number, staleMs: number): Connection | null {
  const c = reports.connection;
  if (!c) return null;
  const stale = now - c.at > staleMs;
  const state =
    stale || c.state === 'ended' ? 'disconnected' : c.state === 'publishing' ? 'connected' : 'reconnecting';
  const s = state === 'disconnected' ? undefined : c.stats;
  return {
    state,
    relayId: c.relayId,
    ...(s?.videoCodec !== undefined ? { videoCodec: s.videoCodec } : {}),
    ...(s?.audioCodec !== undefined ? { audioCodec: s.audioCodec } : {}),
    ...(s?.width !== undefined ? { width: s.width } : {}),
    ...(s?.height !== undefined ? { height: s.height } : {}),
    ...(s?.fps !== undefined ? { fps: s.fps } : {}),
    ...(s?.bitrateKbps !== undefined ? { bitrateKbps: s.bitrateKbps } : {}),
    ...(s?.protocol !== undefined ? { protocol: s.protocol } : {}),
    updated: iso(c.at),
  };
}

/** Cloudflare's `status` for a connection: null before any publish. */
export function statusOf(connection: Connection | null): LiveInput['status'] {
  if (!connection) return null;
  if (connection.state === 'connected') return 'connected';
  if (connection.state === 'reconnecting') return 'reconnecting';
  return 'client_disconnect';
}

export function liveInputView(r: LiveInputRecord, ctx: ViewContext): LiveInput {
  const relay = ctx.relay;
  const connection = connectionOf(ctx.reports, ctx.now, ctx.staleMs);
  const out: LiveInput = {
    uid: r.uid,
    created: iso(r.created),
    modified: iso(r.modified),
    meta: r.meta,
    enabled: r.enabled,
    ...(r.defaultCreator !== undefined ? { defaultCreator: r.defaultCreator } : {}),
    ...(r.deleteRecordingAfterDays !== null ? { deleteRecordingAfterDays: r.deleteRecordingAfterDays } : {}),
    recording: r.recording,
    status: statusOf(connection),
    ...(connection ? { connection } : {}),
  };
  if (!relay) return out;
  out.rtmps = splitPublishUrl(relay.rtmpUrl, r.userId, r.uid, ctx.token);
  if (relay.srtUrl) {
    const streamId =
      srtPublishStreamId(r.userId, r.uid, ctx.token) ??
      (ctx.compactToken ? srtPublishStreamId(r.userId, r.uid, ctx.compactToken) : null);
    if (streamId !== null)
      out.srt = { url: trim(relay.srtUrl), streamId, passphrase: ctx.srtPassphrase ?? '' };
  }
  // What the relay announced with hls-ready for this stream, if it is the relay named now.
  const announced = ctx.reports.playback?.relayId === relay.relayId ? ctx.reports.playback : null;
  if (relay.whipUrl) out.webRTC = { url: whipPublishUrl(relay.whipUrl, r.userId, r.uid, ctx.token) };
  if (announced?.webrtcUrl) out.webRTCPlayback = { url: announced.webrtcUrl };
  else if (relay.whipUrl)
    out.webRTCPlayback = { url: `${trim(relay.hlsUrl)}/whep/${hlsPath(r.userId, r.uid)}` };
  out.hls = { url: withPublicBase(hlsPlaylistUrl(relay.hlsUrl, r.userId, r.uid), ctx.hlsPublicBaseUrl) };
  if (announced?.dashUrl) out.dash = { url: announced.dashUrl };
  return out;
}

export function outputView(o: OutputRecord, reports: LiveInputReports | null): Output {
  const reported = reports?.outputs.find((x) => x.name === o.uid);
  return {
    uid: o.uid,
    url: o.url,
    streamKey: maskKey(o.streamKey),
    enabled: o.enabled,
    status:
      o.enabled && reported
        ? { state: reported.status, ...(reported.error ? { error: reported.error } : {}) }
        : null,
  };
}

/** The destination the relay pushes to: Cloudflare's `url` joined with its `streamKey`. */
export function destinationUrl(o: OutputRecord): string {
  return `${trim(o.url)}/${o.streamKey}`;
}
