/**
 * From what a publisher sends (connect's tcUrl or app, publish's name) to the stream key and its parts.
 * Clients split `live/user/stream` differently (rtmp.md: app `live/user` + name `stream`, librtmp differs on
 * longer paths), so the key is path(tcUrl or app) + "/" + name-without-query (gortmplib's joinURL), which
 * must then match `live/{userId}/{streamId}` under the naming contract. Pure.
 *
 * A refusal's reason goes to the publisher (NetStream.Publish.BadName's description) and to the log, so it
 * names what was refused, quoted by `quoteRefused` (control characters escaped, length capped, the query
 * and so any token left out), and the rule it broke.
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
/** The most characters of a refused value a reason quotes. */
const MAX_QUOTED = 64;

/** The rules, as a publisher reads them. */
export const NameRules = {
  path: `the stream path must be ${PUBLISH_APP}/{userId}/{streamId}`,
  userId: 'a userId is 1-128 of A-Z a-z 0-9 . _ + @ - and neither starts with "." nor contains ".."',
  streamId: 'a streamId is 1-64 of A-Z a-z 0-9 _ -',
  percent: 'every % must start a %XX escape of UTF-8',
  length: `a publish name, app or tcUrl is at most ${MAX_INPUT} characters`,
} as const;

/**
 * A refused value made safe for a status message and a log line: quoted as JSON (control characters and
 * quotes escaped), other non-ASCII characters escaped too, cut at `max` characters with the length said.
 */
export function quoteRefused(value: string, max = MAX_QUOTED): string {
  const cut = value.length > max ? value.slice(0, max) : value;
  const quoted = JSON.stringify(cut).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return value.length > max ? `${quoted}... (${value.length} characters)` : quoted;
}

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
    return { ok: false, reason: `empty publish name: ${NameRules.path}` };
  const tcUrl = typeof input.tcUrl === 'string' ? trimQuotes(input.tcUrl) : '';
  const app = typeof input.app === 'string' ? trimQuotes(input.app) : '';
  for (const [what, value] of [
    ['publish name', input.name],
    ['tcUrl', tcUrl],
    ['app', app],
  ] as const) {
    if (value.length > MAX_INPUT)
      return { ok: false, reason: `${what} of ${value.length} characters: ${NameRules.length}` };
  }
  const base = tcUrlPath(tcUrl) ?? splitQuery(app);
  const name = splitQuery(input.name);

  const params: Record<string, string> = {};
  const baseToken = parseQuery(base.query, params);
  const nameToken = parseQuery(name.query, params);
  const token = nameToken ?? baseToken;

  // Only the paths are ever quoted: the queries (and the token in them) stay out of every reason.
  const path = `${base.path}/${name.path}`;
  const segments: string[] = [];
  for (const raw of path.split('/')) {
    if (raw === '') continue;
    const seg = decodeSegment(raw);
    if (seg === null)
      return {
        ok: false,
        reason: `malformed percent-encoding in ${quoteRefused(path)}: ${NameRules.percent}`,
      };
    segments.push(seg);
  }
  if (segments.length !== 3 || segments[0] !== PUBLISH_APP) {
    return { ok: false, reason: `stream path ${quoteRefused(segments.join('/'))}: ${NameRules.path}` };
  }
  const userId = segments[1]!;
  const streamId = segments[2]!;
  if (!isValidUserId(userId))
    return { ok: false, reason: `userId ${quoteRefused(userId)}: ${NameRules.userId}` };
  if (!isValidStreamId(streamId))
    return { ok: false, reason: `streamId ${quoteRefused(streamId)}: ${NameRules.streamId}` };
  return {
    ok: true,
    target: { key: `${PUBLISH_APP}/${userId}/${streamId}`, userId, streamId, token, params },
  };
}
