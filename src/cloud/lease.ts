/**
 * A lease for the timers that must run once across cloud replicas (relay liveness, glasses keep-alives):
 * the replica holding it runs them. In Redis a key set with NX and a TTL, renewed by its holder at a third
 * of the TTL with a compare-and-renew script; a holder that dies is replaced within one TTL. In one process
 * the lease is always held.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import { DEFAULT_REDIS_PREFIX } from './store-redis.ts';

export interface Lease {
  /** Whether this process holds the lease now. */
  readonly held: boolean;
  close(): Promise<void>;
}

export const ALWAYS_HELD: Lease = { held: true, close: async () => {} };

/** KEYS: lease. ARGV: owner, ttlMs → 1 when held by owner after the call. */
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`;
/** KEYS: lease. ARGV: owner → releases it if held by owner. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1`;

type LeaseScripts = {
  leaseAcquire(key: string, owner: string, ttl: number): Promise<number>;
  leaseRelease(key: string, owner: string): Promise<number>;
};

export class RedisLease implements Lease {
  readonly owner = randomBytes(8).toString('hex');
  readonly #redis: Redis & LeaseScripts;
  readonly #key: string;
  readonly #ttlMs: number;
  readonly #timer: NodeJS.Timeout;
  readonly #log: Logger;
  #held = false;
  #until = 0;
  #closed = false;

  constructor(options: { redis: Redis; name: string; ttlMs: number; prefix?: string; log: Logger }) {
    this.#redis = options.redis as Redis & LeaseScripts;
    this.#key = `${options.prefix ?? DEFAULT_REDIS_PREFIX}lease:${options.name}`;
    this.#ttlMs = options.ttlMs;
    this.#log = options.log.child({ component: 'lease', lease: options.name });
    const redis: Redis = options.redis;
    if (!('leaseAcquire' in redis)) {
      redis.defineCommand('leaseAcquire', { numberOfKeys: 1, lua: ACQUIRE });
      redis.defineCommand('leaseRelease', { numberOfKeys: 1, lua: RELEASE });
    }
    this.#timer = setInterval(() => void this.#renew(), Math.max(50, Math.floor(this.#ttlMs / 3)));
    void this.#renew();
  }

  /** Held, and not past the TTL since the last renewal this process saw succeed (a safety margin). */
  get held(): boolean {
    return this.#held && performance.now() < this.#until;
  }

  async #renew(): Promise<void> {
    if (this.#closed) return;
    const asked = performance.now();
    try {
      const held = (await this.#redis.leaseAcquire(this.#key, this.owner, this.#ttlMs)) === 1;
      if (held !== this.#held) this.#log.info({ held }, held ? 'lease taken' : 'lease lost');
      this.#held = held;
      // Counted from before the call: Redis started the TTL no earlier than that.
      this.#until = asked + this.#ttlMs;
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'lease not renewed (store unreachable)');
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#held) {
      this.#held = false;
      try {
        await this.#redis.leaseRelease(this.#key, this.owner);
      } catch {
        // unreachable: the lease expires on its own within its TTL
      }
    }
  }
}
