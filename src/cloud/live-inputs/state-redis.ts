/**
 * Live inputs in Redis (semantics: `state.ts`), so cloud replicas share them and a restart finds them. Each
 * write is one Lua script (the version check, or the existence check, with the write); reads are plain. Every
 * key has an owner and an end, all under the store's prefix (one `{hash tag}`, one cluster slot):
 *   li:i:{uid}        STRING  the record (JSON)                       removed by DELETE
 *   li:all            SET     every uid                               the uid leaves with DELETE
 *   li:r:{uid}        HASH    relay reports: `conn`, `outputs`,       removed by DELETE; written only while
 *                             `playback` (JSON)
 *                                                                     li:i:{uid} exists
 *   li:ended:{key}    STRING  relay a deleted live stream must end on  TTL; removed when that relay reports
 *                                                                     the stream ended
 *   li:webhook        STRING  the account's webhook (JSON)            removed by DELETE /stream/webhook
 * Live inputs have no TTL: like Cloudflare's they last until deleted.
 */
import type { Redis } from 'ioredis';
import { ErrorCodes, toRelayError } from '../../shared/errors.ts';
import { DEFAULT_REDIS_PREFIX } from '../store-redis.ts';
import type { RestreamOutputRecord } from '../stream-state.ts';
import type {
  ConnectionReport,
  LiveInputRecord,
  LiveInputReports,
  LiveInputStore,
  PlaybackReport,
  WebhookConfig,
} from './state.ts';

/** KEYS: i:{uid}, all. ARGV: json, uid → 1 created, 0 taken. */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
`;

/** KEYS: i:{uid}. ARGV: expected v, json (with v + 1) → 1 saved, 0 stale or gone. */
const SAVE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if tonumber(cjson.decode(cur).v) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`;

/** KEYS: i:{uid}, all, r:{uid}, ended:{key}. ARGV: uid, relayId ('' none), ttlMs → 1 removed, 0 absent. */
const REMOVE = `
local existed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if existed == 1 and ARGV[2] ~= '' then redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3]) end
return existed
`;

/** KEYS: i:{uid}, r:{uid}. ARGV: field, json → written only while the input exists. */
const REPORT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`;

type Scripts = {
  liCreate(...args: (string | number)[]): Promise<number>;
  liSave(...args: (string | number)[]): Promise<number>;
  liRemove(...args: (string | number)[]): Promise<number>;
  liReport(...args: (string | number)[]): Promise<number>;
};

export class RedisLiveInputStore implements LiveInputStore {
  readonly shared = true;
  readonly #redis: Redis & Scripts;
  readonly #p: string;

  /** `redis` is a shared connection: the caller closes it. */
  constructor(options: { redis: Redis; prefix?: string }) {
    this.#redis = options.redis as Redis & Scripts;
    this.#p = `${options.prefix ?? DEFAULT_REDIS_PREFIX}li:`;
    const define = (name: string, keys: number, lua: string): void => {
      if (!(name in this.#redis)) this.#redis.defineCommand(name, { numberOfKeys: keys, lua });
    };
    define('liCreate', 2, CREATE);
    define('liSave', 1, SAVE);
    define('liRemove', 4, REMOVE);
    define('liReport', 2, REPORT);
  }

  #i(uid: string): string {
    return `${this.#p}i:${uid}`;
  }
  #r(uid: string): string {
    return `${this.#p}r:${uid}`;
  }

  async #try<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw toRelayError(err, ErrorCodes.CLOUD_STORE_FAILED);
    }
  }

  async create(record: LiveInputRecord): Promise<boolean> {
    const ok = await this.#try(() =>
      this.#redis.liCreate(this.#i(record.uid), `${this.#p}all`, JSON.stringify(record), record.uid),
    );
    return ok === 1;
  }

  async get(uid: string): Promise<LiveInputRecord | null> {
    const json = await this.#try(() => this.#redis.get(this.#i(uid)));
    return json ? (JSON.parse(json) as LiveInputRecord) : null;
  }

  async all(): Promise<LiveInputRecord[]> {
    const uids = await this.#try(() => this.#redis.smembers(`${this.#p}all`));
    const out: LiveInputRecord[] = [];
    for (let i = 0; i < uids.length; i += 500) {
      const batch = uids.slice(i, i + 500);
      const jsons = await this.#try(() => this.#redis.mget(batch.map((uid) => this.#i(uid))));
      for (const json of jsons) if (json) out.push(JSON.parse(json) as LiveInputRecord);
    }
    return out;
  }

  async count(): Promise<number> {
    return this.#try(() => this.#redis.scard(`${this.#p}all`));
  }

  async save(record: LiveInputRecord): Promise<boolean> {
    const next = { ...record, v: record.v + 1 };
    const ok = await this.#try(() => this.#redis.liSave(this.#i(record.uid), record.v, JSON.stringify(next)));
    if (ok === 1) record.v = next.v;
    return ok === 1;
  }

  async remove(uid: string, ended?: { key: string; relayId: string; ttlMs: number }): Promise<boolean> {
    const ok = await this.#try(() =>
      this.#redis.liRemove(
        this.#i(uid),
        `${this.#p}all`,
        this.#r(uid),
        `${this.#p}ended:${ended?.key ?? uid}`,
        uid,
        ended?.relayId ?? '',
        Math.max(1, Math.round(ended?.ttlMs ?? 1)),
      ),
    );
    return ok === 1;
  }

  async reports(uid: string): Promise<LiveInputReports> {
    const [conn, outputs, playback] = await this.#try(() =>
      this.#redis.hmget(this.#r(uid), 'conn', 'outputs', 'playback'),
    );
    return {
      connection: conn ? (JSON.parse(conn) as ConnectionReport) : null,
      outputs: outputs ? (JSON.parse(outputs) as RestreamOutputRecord[]) : [],
      ...(playback ? { playback: JSON.parse(playback) as PlaybackReport } : {}),
    };
  }

  async setConnection(uid: string, report: ConnectionReport): Promise<void> {
    await this.#try(() => this.#redis.liReport(this.#i(uid), this.#r(uid), 'conn', JSON.stringify(report)));
  }

  async setOutputs(uid: string, outputs: RestreamOutputRecord[]): Promise<void> {
    await this.#try(() =>
      this.#redis.liReport(this.#i(uid), this.#r(uid), 'outputs', JSON.stringify(outputs)),
    );
  }

  async setPlayback(uid: string, playback: PlaybackReport): Promise<void> {
    await this.#try(() =>
      this.#redis.liReport(this.#i(uid), this.#r(uid), 'playback', JSON.stringify(playback)),
    );
  }

  async endedOn(key: string): Promise<string | null> {
    return this.#try(() => this.#redis.get(`${this.#p}ended:${key}`));
  }

  async forgetEnded(key: string): Promise<void> {
    await this.#try(() => this.#redis.del(`${this.#p}ended:${key}`));
  }

  async webhook(): Promise<WebhookConfig | null> {
    const json = await this.#try(() => this.#redis.get(`${this.#p}webhook`));
    return json ? (JSON.parse(json) as WebhookConfig) : null;
  }

  async setWebhook(config: WebhookConfig | null): Promise<void> {
    if (config) await this.#try(() => this.#redis.set(`${this.#p}webhook`, JSON.stringify(config)));
    else await this.#try(() => this.#redis.del(`${this.#p}webhook`));
  }

  async close(): Promise<void> {
    // The connection is the caller's.
  }
}
