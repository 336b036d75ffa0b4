/**
 * From what a publisher sends (connect's tcUrl or app, publish's name) to the stream key and its parts.
 * Clients split `live/user/stream` differently (rtmp.md: app `live/user` + name `stream`, librtmp differs on
 * longer paths), so the key is path(tcUrl or app) + "/" + name-without-query (gortmplib's joinURL), which
 * must then match `live/{userId}/{streamId}` under the naming contract. Pure.
 */
import { isValidStreamId, isValidUserId, PUBLISH_APP } from '../contracts/names.ts';

export interface PublishTarget {
  /** `live/{userId}/{streamId}` */
  key: string;
  userId: string;
  streamId: string;
  /** The `token` query parameter, kept apart so it never lands in a log or an event's params. */
  token: string | undefined;
  /** Other query parameters (for example `profile`), name's query over tcUrl's. */
  params: Record<string, string>;
}

export type ParseResult = { ok: true; target: PublishTarget } | { ok: false; reason: string };

const MAX_INPUT = 2048;

function trimQuotes(s: string): string {
  return s.replace(/^["']+|["']+$/g, '').trim();
}

function splitQuery(s: string): { path: string; query: string } {
  const q = s.indexOf('?');
  return q < 0 ? { path: s, query: '' } : { path: s.slice(0, q), query: s.slice(q + 1) };
}

/** The path part of a tcUrl (`rtmp://host:port/live/user` → `live/user`), or null when it is no URL. */
function tcUrlPath(tcUrl: string): { path: string; query: string } | null {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]*\/?(.*)$/i.exec(tcUrl);
  if (!m) return null;
  return splitQuery(m[1]!);
}

function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null; // malformed percent-encoding: the caller refuses the name
  }
}

function parseQuery(query: string, into: Record<string, string>): string | undefined {
  let token: string | undefined;
  // librtmp appends its own options after a space ("?token=abc live=1"): only the part before counts.
  const clean = query.split(/\s/)[0] ?? '';
  for (const [k, v] of new URLSearchParams(clean)) {
    if (k === 'token') token = v;
    else into[k] = v;
  }
  return token;
}

/**
 * Resolves a publish. `tcUrl` and `app` come from connect's command object; `name` is publish's first
 * argument, which carries the query (`stream1?token=abc`).
 */
export function parsePublishTarget(input: { tcUrl?: unknown; app?: unknown; name: unknown }): ParseResult {
  if (typeof input.name !== 'string' || input.name.length === 0)
    return { ok: false, reason: 'empty publish name' };
  const tcUrl = typeof input.tcUrl === 'string' ? trimQuotes(input.tcUrl) : '';
  const app = typeof input.app === 'string' ? trimQuotes(input.app) : '';
  if (input.name.length > MAX_INPUT || tcUrl.length > MAX_INPUT || app.length > MAX_INPUT) {
    return { ok: false, reason: 'publish name or URL too long' };
  }
  const base = tcUrlPath(tcUrl) ?? splitQuery(app);
  const name = splitQuery(input.name);

  const params: Record<string, string> = {};
  const baseToken = parseQuery(base.query, params);
  const nameToken = parseQuery(name.query, params);
  const token = nameToken ?? baseToken;

  const segments: string[] = [];
  for (const raw of `${base.path}/${name.path}`.split('/')) {
    if (raw === '') continue;
    const seg = decodeSegment(raw);
    if (seg === null) return { ok: false, reason: 'malformed percent-encoding in the stream path' };
    segments.push(seg);
  }
  if (segments.length !== 3 || segments[0] !== PUBLISH_APP) {
    return { ok: false, reason: `stream path must be ${PUBLISH_APP}/{userId}/{streamId}` };
  }
  const userId = segments[1]!;
  const streamId = segments[2]!;
  if (!isValidUserId(userId)) return { ok: false, reason: 'invalid userId' };
  if (!isValidStreamId(streamId)) return { ok: false, reason: 'invalid streamId' };
  return {
    ok: true,
    target: { key: `${PUBLISH_APP}/${userId}/${streamId}`, userId, streamId, token, params },
  };
}
