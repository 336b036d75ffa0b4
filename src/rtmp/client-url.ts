/**
 * Publish URLs for the RTMP client (./client.ts), pure: `rtmp[s]://host[:port]/app[/instance]/streamKey[?query]`
 * split the way FFmpeg's `rtmpproto.c` splits it (the one rule YouTube, Twitch and Facebook ingest is known
 * to work with): the app is the first path segment, or the first two when there are three or more (an
 * application instance), unless a `:` comes first (`mp4:folder/file`); the stream name is the rest, with the
 * query kept on it (Facebook keys carry `?s_bl=1&…`). The URL is read by hand, not with WHATWG `URL`, so
 * the key stays byte for byte what the user gave (`URL` would cut it at `#` and percent-encode it).
 *
 * The stream name is a secret (a YouTube or Twitch stream key): only `redacted` may be logged or reported.
 */
import { isIP } from 'node:net';

export type RtmpScheme = 'rtmp' | 'rtmps';

export interface RtmpUrl {
  scheme: RtmpScheme;
  /** Host to connect to (an IPv6 address without its brackets). */
  host: string;
  port: number;
  /** The `connect` command's `app` (`live2`, `app/instance`). */
  app: string;
  /** The `publish` command's name: the stream key with its query. Secret. */
  streamName: string;
  /** The `connect` command's `tcUrl`: scheme, host (and port when the URL names one) and app. */
  tcUrl: string;
  /** The URL with the stream name replaced: safe for logs and status reports. */
  redacted: string;
}

export type RtmpUrlResult = { ok: true; url: RtmpUrl } | { ok: false; reason: string };

export const RTMP_DEFAULT_PORT = 1935;
export const RTMPS_DEFAULT_PORT = 443;
/** The contract's bound on a destination URL (contracts/relay-api.ts RestreamDestination). */
export const MAX_RTMP_URL_LENGTH = 1024;
export const REDACTED_KEY = '[redacted]';

const SCHEME = /^(rtmps?):\/\//i;
/** A DNS name or an IPv4 literal: letters, digits, `-`, `_`, `.`; labels of 1–63, 253 in all. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what it refuses
const UNSAFE = /[\u0000-\u0020\u007f]/;

/** Splits a path (no leading slash, no query) into app and stream name, as FFmpeg does. */
function splitPath(path: string): { app: string; name: string } {
  const first = path.indexOf('/');
  if (first < 0) return { app: path, name: '' };
  const second = path.indexOf('/', first + 1);
  const colon = path.indexOf(':', first + 1);
  if (second < 0 || (colon >= 0 && colon < second)) {
    return { app: path.slice(0, first), name: path.slice(first + 1) };
  }
  return { app: path.slice(0, second), name: path.slice(second + 1) };
}

/** Parses and checks a publish URL. Never throws; a refusal says what is wrong without quoting the key. */
export function parseRtmpUrl(input: string): RtmpUrlResult {
  const fail = (reason: string): RtmpUrlResult => ({ ok: false, reason });
  if (typeof input !== 'string') return fail('the URL is not a string');
  const raw = input.trim();
  if (raw.length === 0) return fail('the URL is empty');
  if (raw.length > MAX_RTMP_URL_LENGTH)
    return fail(`the URL is longer than ${MAX_RTMP_URL_LENGTH} characters`);
  if (UNSAFE.test(raw)) return fail('the URL contains spaces or control characters');
  const scheme = SCHEME.exec(raw);
  if (!scheme) return fail('only rtmp:// and rtmps:// URLs can be re-streamed');
  const kind = scheme[1]!.toLowerCase() as RtmpScheme;
  const rest = raw.slice(scheme[0].length);

  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const pathAndQuery = slash < 0 ? '' : rest.slice(slash + 1);
  if (authority.includes('@')) return fail('credentials in the URL are not supported');
  if (/[?#]/.test(authority)) return fail('the URL has no path after the host');

  let host: string;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return fail('unterminated IPv6 address');
    host = authority.slice(1, close);
    if (isIP(host) !== 6) return fail('invalid IPv6 address');
    const after = authority.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return fail('invalid host');
      portText = after.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    if (colon >= 0) portText = authority.slice(colon + 1);
    if (host === '') return fail('the URL has no host');
    if (!HOST_NAME.test(host)) return fail('invalid host name');
  }
  let port = kind === 'rtmps' ? RTMPS_DEFAULT_PORT : RTMP_DEFAULT_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) return fail('invalid port');
    port = Number(portText);
    if (port < 1 || port > 65535) return fail('port out of range');
  }

  const q = pathAndQuery.indexOf('?');
  const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const query = q < 0 ? '' : pathAndQuery.slice(q);
  const { app, name } = splitPath(path);
  if (app === '') return fail('the URL has no application (rtmp://host/app/streamKey)');
  if (name === '' || name.endsWith('/')) return fail('the URL has no stream key (rtmp://host/app/streamKey)');

  const base = `${kind}://${authority}/${app}`;
  return {
    ok: true,
    url: {
      scheme: kind,
      host,
      port,
      app,
      streamName: name + query,
      tcUrl: base,
      redacted: `${base}/${REDACTED_KEY}`,
    },
  };
}

/**
 * A URL safe to log or report: the stream key replaced. For an unparsable URL, whatever follows the host
 * is dropped (it may hold a key), and so are credentials.
 */
export function redactRtmpUrl(input: string): string {
  const parsed = parseRtmpUrl(input);
  if (parsed.ok) return parsed.url.redacted;
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#@\s]*@)?([^/?#@\s]{0,255})/i.exec(String(input).trim());
  if (!m) return REDACTED_KEY;
  return `${m[1]}${m[3]}/${REDACTED_KEY}`;
}
