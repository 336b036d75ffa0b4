/**
 * URL builders (architecture §3), the one copy of each: the publish URL the glasses get, the HLS URL a relay
 * announces, the DASH MPD and the thumbnail beside it, a CDN base in place of the relay's, a playback token on a
 * playback URL, and whether an announced URL sits under a base (the cloud's check on hls-ready).
 */

import { hlsPath, publishKey } from './keys.ts';
import { srtPublishStreamId } from './srt.ts';

const trim = (base: string): string => base.replace(/\/+$/, '');

/** `rtmp://HOST:1935/live/{userId}/{streamId}[?token=…]`. */
export function rtmpPublishUrl(rtmpBase: string, userId: string, streamId: string, token?: string): string {
  const url = `${trim(rtmpBase)}/${publishKey(userId, streamId)}`;
  return token ? `${url}?token=${token}` : url;
}

/**
 * `srt://HOST:PORT?streamid=publish:live/{userId}/{streamId}[?token=…]` (the cloud percent-encodes it).
 * Only FFmpeg's option names, in FFmpeg's units: the glasses' StreamPack reads the URL with srtdroid's
 * `SrtUrl`, which takes FFmpeg's `srt://` options (`streamid`, `passphrase`, `latency` in µs), decodes each
 * value once as FFmpeg does, and throws on any parameter it does not know.
 */
export function srtPublishUrl(
  srtBase: string,
  userId: string,
  streamId: string,
  token?: string,
  options: { passphrase?: string | null; latencyMs?: number } = {},
): string | null {
  // libsrt's 512-byte cap on the stream id: a longer one cannot be sent (the caller falls back to RTMP).
  const id = srtPublishStreamId(userId, streamId, token);
  if (id === null) return null;
  const base = trim(srtBase);
  const q: [string, string][] = [['streamid', id]];
  if (options.passphrase) q.push(['passphrase', options.passphrase]);
  // libsrt's URL option is in microseconds (FFmpeg's srt:// reads it so too).
  if (options.latencyMs !== undefined) q.push(['latency', String(Math.round(options.latencyMs * 1000))]);
  // Percent-encoded throughout, never `+` for a space: FFmpeg keeps a `+` as it is, Android's Uri reads a space.
  const query = q.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  return `${base}${base.includes('?') ? '&' : '?'}${query}`;
}

/** `http://HOST:8888/whip/live/{userId}/{streamId}[?token=…]`. */
export function whipPublishUrl(whipBase: string, userId: string, streamId: string, token?: string): string {
  const url = `${trim(whipBase)}/whip/${publishKey(userId, streamId)}`;
  return token ? `${url}?token=${token}` : url;
}

/** `http://HOST:8888/hls/{userPath}/{streamId}/index.m3u8`. */
export function hlsPlaylistUrl(hlsBase: string, userId: string, streamId: string): string {
  return `${trim(hlsBase)}/hls/${hlsPath(userId, streamId)}/index.m3u8`;
}

/** `http://HOST:8888/dash/{userPath}/{streamId}/index.mpd`. */
export function dashMpdUrl(base: string, userId: string, streamId: string): string {
  return `${trim(base)}/dash/${hlsPath(userId, streamId)}/index.mpd`;
}

/**
 * The DASH MPD a relay serves beside an HLS playlist (`/hls/{userPath}/{streamId}/index.m3u8` →
 * `/dash/{userPath}/{streamId}/index.mpd`, under the same base, with the same query: a playback token), or
 * null for a URL that is not a stream's playlist.
 */
export function dashUrlOf(playlistUrl: string): string | null {
  const match = /^(.*)\/hls\/([^/?#]+)\/([^/?#]+)\/index\.m3u8(\?[^#]*)?$/.exec(playlistUrl);
  return match ? `${match[1]}/dash/${match[2]}/${match[3]}/index.mpd${match[4] ?? ''}` : null;
}

/** The thumbnail a relay serves beside a playlist, or null for a URL that is not one. */
export function thumbnailUrlOf(playlistUrl: string): string | null {
  return /\/index\.m3u8$/.test(playlistUrl) ? playlistUrl.replace(/index\.m3u8$/, 'thumbnail.jpg') : null;
}

/**
 * A playback URL with its playback token (`?token=`, or `&token=` after a query it has); unchanged without one.
 * A signed token is three base64url parts: nothing in it needs escaping.
 */
export function withPlaybackToken(url: string, token: string | null | undefined): string {
  if (!token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${token}`;
}

/** The same path under a CDN base (HLS_PUBLIC_BASE_URL): everything from `/hls/` on is kept. */
export function withPublicBase(url: string, publicBase: string | undefined): string {
  if (!publicBase) return url;
  const at = url.indexOf('/hls/');
  return at < 0 ? url : `${trim(publicBase)}${url.slice(at)}`;
}

/**
 * Whether `url` sits under `base` (scheme, host, port equal; path below the base's). Compared as parsed
 * URLs, so `http://relay:8888.evil.com/` or `http://relay:8888@evil/` never pass for `http://relay:8888`.
 */
export function isUnderBase(url: string, base: string): boolean {
  let u: URL;
  let b: URL;
  try {
    u = new URL(url);
    b = new URL(base);
  } catch {
    return false; // not URLs: not under anything
  }
  if (u.username || u.password || u.protocol !== b.protocol || u.host !== b.host) return false;
  const prefix = `${b.pathname.replace(/\/+$/, '')}/`;
  return u.pathname.startsWith(prefix) && !u.pathname.includes('/../') && !u.pathname.includes('/./');
}
