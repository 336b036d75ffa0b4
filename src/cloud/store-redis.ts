/**
 * The cloud store in Redis (many cloud instances). Every call is one Lua script run with EVALSHA (ioredis
 * `defineCommand`), so placements never race: a script runs alone on the server, and counts come from sets
 * (what relays reported, what the cloud reserved), never from increments. No `KEYS`/`SCAN`: the least-loaded
 * relay with room is the first member of a sorted set kept up to date by every script that changes a relay.
 * Semantics: `store.ts`.
 *
 * Key layout under `prefix` (default `{relay-cloud}:`; keep a `{hash tag}` in it so that a cluster puts every
 * key in one slot):
 *   seen                  ZSET  relayId → lastSeen (ms): liveness, `liveRelays`, forgetting old relays
 *   relay:{id}            HASH  rtmp, hls, max, region, cpu, ck (cpu order key), draining (0/1), lastSeen,
 *                               member + eregion (where it is indexed in `eligible`, '' when not)
 *   relay:{id}:streams    SET   stream keys the relay reported live in its last heartbeat
 *   relay:{id}:resv       SET   stream keys reserved on it and not reported yet
 *   assign                HASH  streamKey → relayId that has or reserved it
 *   resv                  ZSET  streamKey → reservation expiry (ms); its relay is `assign[streamKey]`
 *   eligible              ZSET  `${ck}|${relayId}` → load, for every non-draining relay with room
 *   eligible:{region}     ZSET  the same, per region
 * Equal loads sort by member, that is by cpu then relayId. Dead relays stay indexed until a placement finds
 * one on top and unindexes it (its next heartbeat indexes it again). Expired reservations are reclaimed at the
 * start of every script that counts them.
 *
 * While Redis is unreachable every call fails fast (CLOUD_STORE_FAILED) instead of waiting in a queue: a
 * connection this store opens flushes its queued commands at every failed reconnect (no retries per
 * request, reconnects at most a second apart, 3 s to connect), and a command unanswered for 3 s fails too.
 * A failed call is never sent later, so nothing stale runs against a Redis that came back; one that timed
 * out on a hung server may still run when it answers (every script is idempotent or expires). A Redis that
 * comes back empty (restarted without persistence) is refilled by the relays: their heartbeats hear
 * "unknown relay", they register again and report their streams. The first failure after a success is
 * logged as `store unreachable`, the first success after that as `store reachable again`.
 */
import { Redis } from 'ioredis';
import type { RegisterRequest } from '../contracts/relay-api.ts';
import { ErrorCodes, toRelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import {
  type CloudStore,
  type CloudStoreOptions,
  cpuOrderKey,
  type Placement,
  type PlaceOptions,
  type RelayRecord,
  type RelayReport,
  resolveStoreOptions,
  streamKeyOf,
} from './store.ts';

export interface RedisCloudStoreOptions extends CloudStoreOptions {
  /** A connection (shared; the caller closes it) or a URL (the store opens and closes its own). */
  redis: Redis | string;
  prefix?: string;
  /** Where connection loss and recovery are told (a connection this store opens; silent when absent). */
  log?: Logger;
}

/** Client options of a connection the store opens: fail fast while Redis is away (see the header). */
export const REDIS_CLIENT_OPTIONS = {
  maxRetriesPerRequest: 0,
  connectTimeout: 3000,
  commandTimeout: 3000,
  retryStrategy: (attempt: number): number => Math.min(attempt * 100, 1000),
} as const;

export const DEFAULT_REDIS_PREFIX = '{relay-cloud}:';

/** Shared by every script. KEYS: seen, assign, resv, eligible; ARGV[1]: the prefix. */
const LIB = `
local SEEN, ASSIGN, RESV, ELIG = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local P = ARGV[1]
local function rk(id) return P .. 'relay:' .. id end
local function sk(id) return P .. 'relay:' .. id .. ':streams' end
local function vk(id) return P .. 'relay:' .. id .. ':resv' end
local function ek(region) return ELIG .. ':' .. region end

local function alive(id, cutoff)
  local s = redis.call('ZSCORE', SEEN, id)
  return s and tonumber(s) > cutoff
end

local function unindex(id, member, eregion)
  if member and member ~= '' then
    redis.call('ZREM', ELIG, member)
    if eregion and eregion ~= '' then redis.call('ZREM', ek(eregion), member) end
  end
end

-- Puts the relay where its counts say: indexed by load when it may take a stream, unindexed otherwise.
local function refresh(id)
  local h = redis.call('HMGET', rk(id), 'max', 'draining', 'ck', 'region', 'member', 'eregion')
  if not h[1] then return end
  local max = tonumber(h[1])
  local count = redis.call('SCARD', sk(id)) + redis.call('SCARD', vk(id))
  if h[2] ~= '1' and count < max then
    local member, region = h[3] .. '|' .. id, h[4] or ''
    if member ~= h[5] or region ~= h[6] then unindex(id, h[5], h[6]) end
    local score = string.format('%.17g', count / max)
    redis.call('ZADD', ELIG, score, member)
    if region ~= '' then redis.call('ZADD', ek(region), score, member) end
    redis.call('HSET', rk(id), 'member', member, 'eregion', region)
  elseif h[5] ~= '' then
    unindex(id, h[5], h[6])
    redis.call('HSET', rk(id), 'member', '', 'eregion', '')
  end
end

local function expire(now)
  local keys = redis.call('ZRANGEBYSCORE', RESV, '-inf', now)
  if #keys == 0 then return end
  local touched = {}
  for _, key in ipairs(keys) do
    local id = redis.call('HGET', ASSIGN, key)
    if id then
      redis.call('SREM', vk(id), key)
      if redis.call('SISMEMBER', sk(id), key) == 0 then redis.call('HDEL', ASSIGN, key) end
      touched[id] = true
    end
    redis.call('ZREM', RESV, key)
  end
  for id in pairs(touched) do refresh(id) end
end

local function remove(id)
  local h = redis.call('HMGET', rk(id), 'member', 'eregion')
  unindex(id, h[1], h[2])
  for _, key in ipairs(redis.call('SMEMBERS', sk(id))) do
    if redis.call('HGET', ASSIGN, key) == id then redis.call('HDEL', ASSIGN, key) end
  end
  for _, key in ipairs(redis.call('SMEMBERS', vk(id))) do
    redis.call('ZREM', RESV, key)
    if redis.call('HGET', ASSIGN, key) == id then redis.call('HDEL', ASSIGN, key) end
  end
  redis.call('DEL', rk(id), sk(id), vk(id))
  redis.call('ZREM', SEEN, id)
end

local function forget(before)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', SEEN, '-inf', before, 'LIMIT', 0, 16)) do remove(id) end
end
`;

/** ARGV: prefix, relayId, now, rtmp, hls, max, region ('' = none), ck of cpu 0, retentionMs, srt, whip ('' = none). */
const UPSERT = `${LIB}
local id, now = ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', rk(id)) == 0 then
  redis.call('HSET', rk(id), 'cpu', '0', 'ck', ARGV[8], 'draining', '0', 'member', '', 'eregion', '')
end
redis.call('HSET', rk(id), 'rtmp', ARGV[4], 'hls', ARGV[5], 'max', ARGV[6], 'region', ARGV[7], 'lastSeen', ARGV[3],
  'srt', ARGV[10] or '', 'whip', ARGV[11] or '')
redis.call('ZADD', SEEN, ARGV[3], id)
expire(now)
refresh(id)
forget(now - tonumber(ARGV[9]))
`;

/** ARGV: prefix, relayId, now, cpu, ck, draining (0/1), expiryMs, retentionMs, streamKey… → 1, or 0 if unknown. */
const HEARTBEAT = `${LIB}
local id, now = ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', rk(id)) == 0 then return 0 end
local seen = redis.call('ZSCORE', SEEN, id)
if not seen or tonumber(seen) <= now - tonumber(ARGV[8]) then
  remove(id)
  return 0
end
expire(now)
local cutoff = now - tonumber(ARGV[7])
local reported = {}
for i = 9, #ARGV do reported[ARGV[i]] = true end
for _, key in ipairs(redis.call('SMEMBERS', sk(id))) do
  if not reported[key] then
    redis.call('SREM', sk(id), key)
    if redis.call('HGET', ASSIGN, key) == id and redis.call('SISMEMBER', vk(id), key) == 0 then
      redis.call('HDEL', ASSIGN, key)
    end
  end
end
local touched = {}
for key in pairs(reported) do
  redis.call('SADD', sk(id), key)
  local owner = redis.call('HGET', ASSIGN, key)
  if not owner then
    redis.call('HSET', ASSIGN, key, id)
  elseif owner == id then
    if redis.call('SREM', vk(id), key) == 1 then redis.call('ZREM', RESV, key) end
  elseif ARGV[6] ~= '1' and redis.call('SREM', vk(owner), key) == 1 then
    -- a live report wins over a reservation elsewhere (not a draining relay's: the stream is moving off it)
    redis.call('ZREM', RESV, key)
    redis.call('HSET', ASSIGN, key, id)
    touched[owner] = true
  elseif not alive(owner, cutoff) then
    redis.call('HSET', ASSIGN, key, id)
  end
end
redis.call('HSET', rk(id), 'cpu', ARGV[4], 'ck', ARGV[5], 'draining', ARGV[6], 'lastSeen', ARGV[3])
redis.call('ZADD', SEEN, ARGV[3], id)
refresh(id)
for owner in pairs(touched) do refresh(owner) end
forget(now - tonumber(ARGV[8]))
return 1
`;

/** ARGV: prefix, streamKey, now, ttlMs, expiryMs, region ('' = any) → {relayId, rtmp, hls, reused} or nil. */
const PLACE = `${LIB}
local key, now = ARGV[2], tonumber(ARGV[3])
local cutoff, region = now - tonumber(ARGV[5]), ARGV[6]
expire(now)
local current = redis.call('HGET', ASSIGN, key)
if current then
  if alive(current, cutoff) then
    local h = redis.call('HMGET', rk(current), 'rtmp', 'hls', 'draining')
    if redis.call('SISMEMBER', sk(current), key) == 1 then return {current, h[1], h[2], 1} end
    if h[3] ~= '1' and redis.call('SISMEMBER', vk(current), key) == 1 then
      redis.call('ZADD', RESV, now + tonumber(ARGV[4]), key)
      return {current, h[1], h[2], 1}
    end
  end
  if redis.call('SREM', vk(current), key) == 1 then
    redis.call('ZREM', RESV, key)
    refresh(current)
  end
  redis.call('HDEL', ASSIGN, key)
end
local function pick(zkey)
  while true do
    local member = redis.call('ZRANGE', zkey, 0, 0)[1]
    if not member then return nil end
    local id = string.match(member, '|(.*)$')
    if alive(id, cutoff) then return id end
    -- dead or gone: unindex it until its next heartbeat
    redis.call('ZREM', zkey, member)
    redis.call('ZREM', ELIG, member)
    local h = redis.call('HMGET', rk(id), 'member', 'eregion')
    if h[1] == member then
      unindex(id, h[1], h[2])
      redis.call('HSET', rk(id), 'member', '', 'eregion', '')
    end
  end
end
local chosen = nil
if region ~= '' then chosen = pick(ek(region)) end
if not chosen then chosen = pick(ELIG) end
if not chosen then return false end
redis.call('SADD', vk(chosen), key)
redis.call('ZADD', RESV, now + tonumber(ARGV[4]), key)
redis.call('HSET', ASSIGN, key, chosen)
refresh(chosen)
local h = redis.call('HMGET', rk(chosen), 'rtmp', 'hls')
return {chosen, h[1], h[2], 0}
`;

/** ARGV: prefix, streamKey. */
const RELEASE = `${LIB}
local key = ARGV[2]
local id = redis.call('HGET', ASSIGN, key)
if not id then return 0 end
if redis.call('SREM', vk(id), key) == 1 then
  redis.call('ZREM', RESV, key)
  refresh(id)
end
redis.call('HDEL', ASSIGN, key)
return 1
`;

/** ARGV: prefix, relayId. */
const REMOVE = `${LIB}
remove(ARGV[2])
return 1
`;

/** ARGV: prefix, streamKey, now, expiryMs → relayId or nil. */
const RELAY_OF = `${LIB}
local key, now = ARGV[2], tonumber(ARGV[3])
local id = redis.call('HGET', ASSIGN, key)
if not id or not alive(id, now - tonumber(ARGV[4])) then return false end
if redis.call('SISMEMBER', sk(id), key) == 1 then return id end
local expires = redis.call('ZSCORE', RESV, key)
if expires and tonumber(expires) > now then return id end
return false
`;

/** ARGV: prefix, now, expiryMs → {{id, rtmp, hls, max, region, cpu, draining, lastSeen, streams, reserved}…}. */
const LIVE = `${LIB}
local now = tonumber(ARGV[2])
expire(now)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', SEEN, '(' .. (now - tonumber(ARGV[3])), '+inf')) do
  local h = redis.call('HMGET', rk(id), 'rtmp', 'hls', 'max', 'region', 'cpu', 'draining', 'lastSeen', 'srt', 'whip')
  if h[1] then
    out[#out + 1] = {id, h[1], h[2], h[3], h[4] or '', h[5], h[6], h[7],
      redis.call('SCARD', sk(id)), redis.call('SCARD', vk(id)), h[8] or '', h[9] or ''}
  end
end
return out
`;

const SCRIPTS = {
  cloudUpsert: UPSERT,
  cloudHeartbeat: HEARTBEAT,
  cloudPlace: PLACE,
  cloudRelease: RELEASE,
  cloudRemove: REMOVE,
  cloudRelayOf: RELAY_OF,
  cloudLive: LIVE,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptCommands = Record<ScriptName, (...args: (string | number)[]) => Promise<unknown>>;

/** A heartbeat's stream keys travel as ARGV and are read with a loop (never `unpack`, which Lua caps). */
export class RedisCloudStore implements CloudStore {
  readonly #redis: Redis;
  readonly #owned: boolean;
  readonly #prefix: string;
  readonly #keys: [string, string, string, string];
  readonly #expiryMs: number;
  readonly #retentionMs: number;
  #closed = false;
  #reachable = true;

  constructor(options: RedisCloudStoreOptions) {
    const resolved = resolveStoreOptions(options);
    this.#expiryMs = resolved.relayExpiryMs;
    this.#retentionMs = resolved.relayRetentionMs;
    this.#prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.#owned = typeof options.redis === 'string';
    this.#redis =
      typeof options.redis === 'string' ? new Redis(options.redis, REDIS_CLIENT_OPTIONS) : options.redis;
    if (this.#owned) this.#watchConnection(options.log);
    const p = this.#prefix;
    this.#keys = [`${p}seen`, `${p}assign`, `${p}resv`, `${p}eligible`];
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      // defineCommand is idempotent per connection; shared connections get the same scripts.
      if (!(name in this.#redis)) this.#redis.defineCommand(name, { numberOfKeys: 4, lua });
    }
  }

  async upsertRelay(relay: RegisterRequest, now: number): Promise<void> {
    const { relayId, rtmpUrl, hlsUrl, maxStreams, region } = relay;
    await this.#run(
      'cloudUpsert',
      relayId,
      now,
      rtmpUrl,
      hlsUrl,
      maxStreams,
      region ?? '',
      cpuOrderKey(0),
      this.#retentionMs,
      relay.srtUrl ?? '',
      relay.whipUrl ?? '',
    );
  }

  async heartbeat(relayId: string, report: RelayReport, now: number): Promise<boolean> {
    const keys = report.streams.map(streamKeyOf);
    const known = await this.#run(
      'cloudHeartbeat',
      relayId,
      now,
      String(report.cpu),
      cpuOrderKey(report.cpu),
      report.draining ? 1 : 0,
      this.#expiryMs,
      this.#retentionMs,
      ...keys,
    );
    return known === 1;
  }

  async removeRelay(relayId: string): Promise<void> {
    await this.#run('cloudRemove', relayId);
  }

  async liveRelays(now: number): Promise<RelayRecord[]> {
    const rows = (await this.#run('cloudLive', now, this.#expiryMs)) as (string | number)[][];
    return rows
      .map(
        ([relayId, rtmpUrl, hlsUrl, max, region, cpu, draining, lastSeen, streams, reserved, srt, whip]) => ({
          relayId: String(relayId),
          rtmpUrl: String(rtmpUrl),
          hlsUrl: String(hlsUrl),
          maxStreams: Number(max),
          ...(region ? { region: String(region) } : {}),
          ...(srt ? { srtUrl: String(srt) } : {}),
          ...(whip ? { whipUrl: String(whip) } : {}),
          cpu: Number(cpu),
          draining: draining === '1',
          lastSeen: Number(lastSeen),
          streams: Number(streams),
          reserved: Number(reserved),
        }),
      )
      .sort((a, b) => (a.relayId < b.relayId ? -1 : a.relayId > b.relayId ? 1 : 0));
  }

  async place(streamKey: string, options: PlaceOptions): Promise<Placement | null> {
    const reply = (await this.#run(
      'cloudPlace',
      streamKey,
      options.now,
      options.reservationTtlMs,
      this.#expiryMs,
      options.region ?? '',
    )) as [string, string, string, number] | null;
    if (!reply) return null;
    const [relayId, rtmpUrl, hlsUrl, reused] = reply;
    return { relayId, rtmpUrl, hlsUrl, reused: reused === 1 };
  }

  async release(streamKey: string): Promise<void> {
    await this.#run('cloudRelease', streamKey);
  }

  async relayOf(streamKey: string, now: number = Date.now()): Promise<string | null> {
    const id = await this.#run('cloudRelayOf', streamKey, now, this.#expiryMs);
    return typeof id === 'string' ? id : null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) {
      // quit() waits for Redis to answer; an unreachable one gets disconnected instead.
      if (this.#redis.status === 'ready') await this.#redis.quit();
      else this.#redis.disconnect();
    }
  }

  /**
   * Logs the first loss of the connection and the first recovery. ioredis emits `error` at every failed
   * reconnect; with no listener it would print each to stderr. The listeners go with the connection.
   */
  #watchConnection(log: Logger | undefined): void {
    const lost = (why: string): void => {
      if (!this.#reachable || this.#closed) return;
      this.#reachable = false;
      log?.warn({ store: 'redis', err: why }, 'store unreachable');
    };
    const onError = (err: Error): void => lost(err.message || String(err));
    const onClose = (): void => lost('connection closed');
    const onReady = (): void => {
      if (this.#reachable) return;
      this.#reachable = true;
      log?.info({ store: 'redis' }, 'store reachable again');
    };
    this.#redis.on('error', onError);
    this.#redis.on('close', onClose);
    this.#redis.on('ready', onReady);
  }

  async #run(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    const command = (this.#redis as unknown as ScriptCommands)[name];
    try {
      return await command.call(this.#redis, ...this.#keys, this.#prefix, ...args);
    } catch (err) {
      throw toRelayError(err, ErrorCodes.CLOUD_STORE_FAILED);
    }
  }
}
