/**
 * SRT names shared by the relay and the cloud: the stream id a publisher sends (architecture §3), libsrt's
 * 512-byte cap on it, and the per-stream passphrase both sides derive from SRT_PASSPHRASE_SECRET so the cloud
 * can hand it out in the publish URL without the relay being asked. Pure.
 */
import { createHmac } from 'node:crypto';
import { PUBLISH_APP } from './names.ts';

/** libsrt's SRT_STREAMID_MAX: a longer stream id cannot be sent; the cloud falls back to RTMP. */
export const SRT_STREAM_ID_MAX = 512;

/**
 * The stream id for a publish: `publish:live/{userId}/{streamId}?token=…`, path segments and token
 * percent-encoded (FFmpeg URL-decodes the `streamid` option once more when it sits in a URL, so a URL
 * builder encodes the whole value again). Returns null when it would not fit libsrt's cap.
 */
export function srtPublishStreamId(userId: string, streamId: string, token?: string): string | null {
  const path = `${PUBLISH_APP}/${encodeURIComponent(userId)}/${encodeURIComponent(streamId)}`;
  const id = token ? `publish:${path}?token=${encodeURIComponent(token)}` : `publish:${path}`;
  return Buffer.byteLength(id) <= SRT_STREAM_ID_MAX ? id : null;
}

/**
 * The passphrase of one stream key (`live/{userId}/{streamId}`): HMAC-SHA256 of the key under the secret,
 * base64url, 32 characters (libsrt takes 10 to 79).
 */
export function srtStreamPassphrase(secret: string, streamKey: string): string {
  return createHmac('sha256', secret).update(`srt-passphrase\n${streamKey}`).digest('base64url').slice(0, 32);
}
