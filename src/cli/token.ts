/**
 * `rtmp-relay token user|publish|playback …`: prints one signed token on stdout, for operators and scripts,
 * with the cloud's secrets from the environment (PUBLISH_TOKEN_SECRET; PLAYBACK_TOKEN_SECRET for playback,
 * which defaults to it). The token goes to stdout only, never to a log; the secret never leaves the process.
 *   token user USER_ID [--ttl SECONDS]                      a user token (glasses and app sockets, REST)
 *   token publish USER_ID STREAM_ID RELAY_ID [--ttl SECONDS] a publish token for one relay
 *   token playback USER_ID STREAM_ID [--ttl SECONDS]         a playback token {sub, sid, scp: "play", exp}
 */
import { parseArgs } from 'node:util';
import { signPublishToken } from '../cloud/tokens.ts';
import { signUserToken } from '../cloud/user-tokens.ts';
import { StreamId, UserId } from '../contracts/relay-api.ts';
import { DEFAULT_PLAYBACK_TTL_SECONDS, signPlaybackToken } from '../shared/playback-token.ts';

export const TOKEN_USAGE = `usage: rtmp-relay token user USER_ID [--ttl SECONDS]
       rtmp-relay token publish USER_ID STREAM_ID RELAY_ID [--ttl SECONDS]
       rtmp-relay token playback USER_ID STREAM_ID [--ttl SECONDS]
secrets from PUBLISH_TOKEN_SECRET (and PLAYBACK_TOKEN_SECRET for playback, default PUBLISH_TOKEN_SECRET)`;

export async function tokenCommand(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { values, positionals } = parseArgs({
    args,
    options: { ttl: { type: 'string' } },
    allowPositionals: true,
  });
  const [kind, userId, streamId, relayId] = positionals;
  // Playback tokens have their own secret when one is set (the cloud's rule, shared/config.ts).
  const playbackSecret = kind === 'playback' ? env.PLAYBACK_TOKEN_SECRET : undefined;
  const secret = playbackSecret || env.PUBLISH_TOKEN_SECRET;
  if (!secret || secret.length < 32) {
    throw new Error(
      `${playbackSecret ? 'PLAYBACK_TOKEN_SECRET' : 'PUBLISH_TOKEN_SECRET'} (at least 32 bytes) is required`,
    );
  }
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
      // At most PLAYBACK_TOKEN_TTL_SECONDS, as the cloud signs them.
      const maxTtl = Number(env.PLAYBACK_TOKEN_TTL_SECONDS) || DEFAULT_PLAYBACK_TTL_SECONDS;
      const iat = Math.floor(Date.now() / 1000);
      return signPlaybackToken(secret, { userId, streamId, iat, exp: iat + Math.min(ttl ?? maxTtl, maxTtl) });
    }
    default:
      throw new Error(TOKEN_USAGE);
  }
}
