/**
 * From an SRT stream id to the publish target (architecture §3): `publish:live/{userId}/{streamId}` with an
 * optional `?token=…` (split at the first `?`, segments percent-decoded), or SRT's access-control form
 * `#!::r=live/{userId}/{streamId},m=publish,s={token}` (keys r, m, u, s, t, h). A refusal names the libsrt
 * rejection code the caller gets, one per reason. Pure.
 */
import { isValidStreamId, isValidUserId, PUBLISH_APP } from '../contracts/names.ts';
import { SRT_STREAM_ID_MAX } from '../contracts/srt.ts';
import { type ErrorCode, ErrorCodes } from '../shared/errors.ts';
import { RejectReason, type RejectReasonId } from './packet.ts';

export interface SrtPublishTarget {
  key: string;
  userId: string;
  streamId: string;
  /** Never log it. */
  token: string | undefined;
  params: Record<string, string>;
}

export type StreamIdResult =
  | { ok: true; target: SrtPublishTarget }
  | { ok: false; reason: string; reject: RejectReasonId; code: ErrorCode };

function refuse(reason: string, reject: RejectReasonId = RejectReason.BadRequest): StreamIdResult {
  const code =
    reject === RejectReason.Unacceptable ? ErrorCodes.SRT_STREAM_ID_TOO_LONG : ErrorCodes.SRT_BAD_STREAM_ID;
  return { ok: false, reason, reject, code };
}

function decode(segment: string): string | null {
  try {
    // FFmpeg turns a raw `+` into a space when it reads the option; no id may hold a space, so it was a `+`.
    return decodeURIComponent(segment.replace(/ /g, '+'));
  } catch {
    return null; // malformed percent-encoding: the caller refuses the id
  }
}

function target(resource: string, token: string | undefined, params: Record<string, string>): StreamIdResult {
  const segments = resource.split('/').filter((s) => s !== '');
  const decoded = segments.map(decode);
  if (decoded.some((s) => s === null)) return refuse('malformed percent-encoding in the stream id');
  if (decoded.length !== 3 || decoded[0] !== PUBLISH_APP) {
    return refuse(`stream id must name ${PUBLISH_APP}/{userId}/{streamId}`);
  }
  const userId = decoded[1]!;
  const streamId = decoded[2]!;
  if (!isValidUserId(userId)) return refuse('invalid userId');
  if (!isValidStreamId(streamId)) return refuse('invalid streamId');
  return {
    ok: true,
    target: { key: `${PUBLISH_APP}/${userId}/${streamId}`, userId, streamId, token, params },
  };
}

export function parseSrtStreamId(sent: string | undefined): StreamIdResult {
  let id = sent;
  if (id === undefined || id === '') return refuse('no stream id');
  if (Buffer.byteLength(id) > SRT_STREAM_ID_MAX) {
    return refuse(`stream id longer than ${SRT_STREAM_ID_MAX} bytes`, RejectReason.Unacceptable);
  }
  // A percent-encoded whole id (the cloud encodes the `streamid` URL option; FFmpeg 6 decodes it, Debian's
  // 5.1 passes it on as it is, turning only `+` into a space): decode it once here.
  if (/^(?:[a-z]+%3a|%23%21%3a%3a)/i.test(id)) {
    const whole = decode(id);
    if (whole === null) return refuse('malformed percent-encoding in the stream id');
    id = whole;
  }
  if (id.startsWith('#!::')) {
    const fields = new Map<string, string>();
    for (const pair of id.slice(4).split(',')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) return refuse('malformed access-control stream id');
      fields.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const mode = fields.get('m') ?? 'publish';
    if (mode !== 'publish') return refuse(`mode ${mode.slice(0, 16)} is not publish`, RejectReason.BadMode);
    const resource = fields.get('r');
    if (resource === undefined) return refuse('access-control stream id without r=');
    const token = fields.get('s');
    return target(resource, token === undefined || token === '' ? undefined : token, {});
  }
  const colon = id.indexOf(':');
  if (colon < 0) return refuse('stream id must start with publish:');
  const mode = id.slice(0, colon);
  if (mode !== 'publish') return refuse(`mode ${mode.slice(0, 16)} is not publish`, RejectReason.BadMode);
  const rest = id.slice(colon + 1);
  const q = rest.indexOf('?');
  const resource = q < 0 ? rest : rest.slice(0, q);
  const params: Record<string, string> = {};
  let token: string | undefined;
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(rest.slice(q + 1))) {
      if (k === 'token') token = v === '' ? undefined : v;
      else params[k] = v;
    }
  }
  return target(resource, token, params);
}
