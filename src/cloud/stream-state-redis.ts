/**
 * Managed streams in Redis (semantics: `stream-state.ts`), so that cloud replicas share them and a cloud
 * restarted on the same Redis resumes every stream. Each write is one Lua script (version check and write
 * together); reads are plain GETs. Every key has an owner and an end:
 *   ms:s:{streamId}    STRING  the record (JSON)          removed when the stream ends; TTL `recordTtlMs`
 *                                                         (default 1 day) renewed by every save, a net for a
 *                                                         cloud that vanished with no replica left
 *   ms:u:{userId}      STRING  the user's streamId        removed with the stream; the same TTL
 *   ms:all             SET     live streamIds             removed with the stream; ids whose record expired
 *                                                         are dropped by `all()`
 *   ms:ended:{key}     STRING  relayId it ended on        TTL `endedTtlMs` (the relay hears to end it)
 *   ms:cmd:{userId}    STRING  a glasses command waiting  TTL (glasses give up after 60 s anyway); taken by
 *                                                         the replica the glasses connect to
 *   ms:epoch           STRING  marks state written since Redis started: missing means Redis lost it
 *                                                         (restarted empty); replicas then put back every
 *                                                         stream they hold in their read cache
 * All under the store's prefix (one `{hash tag}`, one cluster slot).
 */
import type { Redis } from 'ioredis';
import type { CloudToGlasses } from '../contracts/mentra.ts';
import { ErrorCodes, toRelayError } from '../shared/errors.ts';
import { DEFAULT_REDIS_PREFIX } from './store-redis.ts';
import type { StreamRecord, StreamStateStore } from './stream-state.ts';

/** KEYS: s:{id}, u:{user}, all. ARGV: json, ttlMs, streamId → nil when created, else the existing JSON. */
const CREATE = `
local existing = redis.call('GET', KEYS[2])
if existing then
  local rec = redis.call('GET', ARGV[4] .. existing)
  if rec then return rec end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return false
`;

/** KEYS: s:{id}, u:{user}. ARGV: expected v, json (with v + 1), ttlMs → 1 saved, 0 stale or gone. */
const SAVE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if tonumber(cjson.decode(cur).v) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`;

/** KEYS: s:{id}, u:{user}, all, ended:{key}. ARGV: expected v, streamId, relayId ('' none), endedTtlMs. */
const REMOVE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if tonumber(cjson.decode(cur).v) ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4]) end
return 1
`;

export interface RedisStreamStateOptions {
  /** A shared connection (the caller closes it). */
  redis: Redis;
  prefix?: string;
  recordTtlMs?: number;
}

type Scripts = {
  msCreate(...args: (string | number)[]): Promise<string | null>;
  msSave(...args: (string | number)[]): Promise<number>;
  msRemove(...args: (string | number)[]): Promise<number>;
};

export class RedisStreamState implements StreamStateStore {
  readonly shared = true;
  readonly #redis: Redis & Scripts;
  readonly #p: string;
  readonly #ttl: number;

  constructor(options: RedisStreamStateOptions) {
    this.#redis = options.redis as Redis & Scripts;
    this.#p = `${options.prefix ?? DEFAULT_REDIS_PREFIX}ms:`;
    this.#ttl = options.recordTtlMs ?? 86_400_000;
    const define = (name: string, keys: number, lua: string): void => {
      if (!(name in this.#redis)) this.#redis.defineCommand(name, { numberOfKeys: keys, lua });
    };
    define('msCreate', 3, CREATE);
    define('msSave', 2, SAVE);
    define('msRemove', 4, REMOVE);
  }

  #s(id: string): string {
    return `${this.#p}s:${id}`;
  }
  #u(userId: string): string {
    return `${this.#p}u:${userId}`;
  }

  async #try<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw toRelayError(err, ErrorCodes.CLOUD_STORE_FAILED);
    }
  }

  async get(streamId: string): Promise<StreamRecord | null> {
    const json = await this.#try(() => this.#redis.get(this.#s(streamId)));
    return json ? (JSON.parse(json) as StreamRecord) : null;
  }

  async byUser(userId: string): Promise<StreamRecord | null> {
    const id = await this.#try(() => this.#redis.get(this.#u(userId)));
    return id ? this.get(id) : null;
  }

  async create(record: StreamRecord): Promise<StreamRecord | null> {
    const existing = await this.#try(() =>
      this.#redis.msCreate(
        this.#s(record.streamId),
        this.#u(record.userId),
        `${this.#p}all`,
        JSON.stringify(record),
        this.#ttl,
        record.streamId,
        `${this.#p}s:`,
      ),
    );
    return existing ? (JSON.parse(existing) as StreamRecord) : null;
  }

  async save(record: StreamRecord): Promise<boolean> {
    const next = { ...record, v: record.v + 1 };
    const ok = await this.#try(() =>
      this.#redis.msSave(
        this.#s(record.streamId),
        this.#u(record.userId),
        record.v,
        JSON.stringify(next),
        this.#ttl,
      ),
    );
    if (ok === 1) record.v = next.v;
    return ok === 1;
  }

  async remove(record: StreamRecord, relayId: string | null, endedTtlMs: number): Promise<boolean> {
    const ok = await this.#try(() =>
      this.#redis.msRemove(
        this.#s(record.streamId),
        this.#u(record.userId),
        `${this.#p}all`,
        `${this.#p}ended:${record.userId}/${record.streamId}`,
        record.v,
        record.streamId,
        relayId ?? '',
        Math.max(1, Math.round(endedTtlMs)),
      ),
    );
    return ok === 1;
  }

  async endedOn(userId: string, streamId: string): Promise<string | null> {
    return this.#try(() => this.#redis.get(`${this.#p}ended:${userId}/${streamId}`));
  }

  async all(): Promise<StreamRecord[]> {
    const ids = await this.#try(() => this.#redis.smembers(`${this.#p}all`));
    if (ids.length === 0) return [];
    const out: StreamRecord[] = [];
    const gone: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const jsons = await this.#try(() => this.#redis.mget(batch.map((id) => this.#s(id))));
      jsons.forEach((json, j) => {
        if (json) out.push(JSON.parse(json) as StreamRecord);
        else gone.push(batch[j]!);
      });
    }
    // Records that expired (their cloud vanished for a day) leave the index here.
    if (gone.length > 0) await this.#try(() => this.#redis.srem(`${this.#p}all`, ...gone));
    return out;
  }

  async holdCommand(userId: string, message: CloudToGlasses, ttlMs: number): Promise<void> {
    await this.#try(() =>
      this.#redis.set(
        `${this.#p}cmd:${userId}`,
        JSON.stringify(message),
        'PX',
        Math.max(1, Math.round(ttlMs)),
      ),
    );
  }

  async takeCommand(userId: string): Promise<CloudToGlasses | null> {
    const json = await this.#try(() => this.#redis.getdel(`${this.#p}cmd:${userId}`));
    return json ? (JSON.parse(json) as CloudToGlasses) : null;
  }

  async intact(): Promise<boolean> {
    const set = await this.#try(() => this.#redis.set(`${this.#p}epoch`, String(Date.now()), 'NX'));
    return set === null; // it was there: nothing lost
  }

  async restore(records: readonly StreamRecord[]): Promise<number> {
    let restored = 0;
    for (const r of records) {
      const existing = await this.create(r);
      if (!existing) restored++;
    }
    return restored;
  }

  async close(): Promise<void> {
    // The connection is the caller's.
  }
}
