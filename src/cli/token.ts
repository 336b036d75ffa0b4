/**
 * `rtmp-relay token user|publish|playback …`: prints one signed token on stdout, for operators and scripts,
 * with the cloud's secrets from the environment (PUBLISH_TOKEN_SECRET; PLAYBACK_TOKEN_SECRET for playback,
 * which defaults to it). The token goes to stdout only, never to a log; the secret never leaves the process.
 *   token user USER_ID [--ttl SECONDS]                      a user token (glasses and app sockets, REST)
 *   token publish USER_ID STREAM_ID RELAY_ID [--ttl SECONDS] a publish token for one relay
 *   token playback USER_ID STREAM_ID [--ttl SECONDS]         a playback token {sub, sid, scp: "play", exp}
 */
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { signPublishToken } from '../cloud/tokens.ts';
import { signUserToken } from '../cloud/user-tokens.ts';
import { StreamId, UserId } from '../contracts/relay-api.ts';

export const TOKEN_USAGE = `usage: rtmp-relay token user USER_ID [--ttl SECONDS]
       rtmp-relay token publish USER_ID STREAM_ID RELAY_ID [--ttl SECONDS]
       rtmp-relay token playback USER_ID STREAM_ID [--ttl SECONDS]
secrets from PUBLISH_TOKEN_SECRET (and PLAYBACK_TOKEN_SECRET for playback, default PUBLISH_TOKEN_SECRET)`;

/** Playback tokens live at most this long (PLAYBACK_TOKEN_TTL_SECONDS' default). */
const MAX_PLAYBACK_TTL = 86_400;

export async function tokenCommand(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { values, positionals } = parseArgs({
    args,
    options: { ttl: { type: 'string' } },
    allowPositionals: true,
  });
  const [kind, userId, streamId, relayId] = positionals;
  const secret = env.PUBLISH_TOKEN_SECRET;
  if (!secret || secret.length < 32) throw new Error('PUBLISH_TOKEN_SECRET (at least 32 bytes) is required');
  const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) throw new Error('--ttl: whole seconds > 0');
  if (!userId || !UserId.safeParse(userId).success)
    throw new Error(`invalid or missing USER_ID\n${TOKEN_USAGE}`);
  switch (kind) {
    case 'user':
      return signUserToken(secret, userId, ttl ?? 86_400);
    case 'publish':
      if (!streamId || !relayId) throw new Error(TOKEN_USAGE);
      return signPublishToken(secret, { userId, streamId, relayId, ttlSeconds: ttl ?? 3600 });
    case 'playback': {
      if (!streamId || !StreamId.safeParse(streamId).success) throw new Error(TOKEN_USAGE);
      const key = new TextEncoder().encode(env.PLAYBACK_TOKEN_SECRET || secret);
      const iat = Math.floor(Date.now() / 1000);
      return new SignJWT({ sid: streamId, scp: 'play' })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(userId)
        .setIssuedAt(iat)
        .setExpirationTime(iat + Math.min(ttl ?? MAX_PLAYBACK_TTL, MAX_PLAYBACK_TTL))
        .sign(key);
    }
    default:
      throw new Error(TOKEN_USAGE);
  }
}
