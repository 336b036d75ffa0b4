/**
 * What cloud replicas tell each other (issue 16): a status for a stream's viewers (every replica fans it out
 * to the app sockets and event streams it holds), a command for a user's glasses (the replica holding that
 * socket sends it), and a stream's record changed or ended (every replica refreshes its read cache). In one
 * process the bus delivers at once; with Redis it is one pub/sub channel, heard by every replica, the
 * sender included. Messages from the channel are checked before use (another replica may run other code).
 */
import type { Redis } from 'ioredis';
import type { CloudToGlasses, ManagedStreamStatus } from '../contracts/mentra.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { DEFAULT_REDIS_PREFIX } from './store-redis.ts';
import type { StreamRecord } from './stream-state.ts';

export interface StatusTarget {
  userId: string;
  streamId: string;
  viewers: string[];
}

export type BusMessage =
  | { kind: 'status'; who: StatusTarget; status: ManagedStreamStatus }
  | { kind: 'glasses'; userId: string; message: CloudToGlasses; from: string }
  | { kind: 'changed'; record: StreamRecord }
  | { kind: 'removed'; streamId: string };

export type CloudBusEvents = { message: [BusMessage] };

export interface CloudBus extends TypedEmitter<CloudBusEvents> {
  publish(message: BusMessage): void;
  close(): Promise<void>;
}

/** One process: delivered at once, in order. */
export class MemoryBus extends TypedEmitter<CloudBusEvents> implements CloudBus {
  publish(message: BusMessage): void {
    this.safeEmit('message', message);
  }

  async close(): Promise<void> {
    this.removeAllListeners();
  }
}

const KINDS = new Set(['status', 'glasses', 'changed', 'removed']);

/** Redis pub/sub: `publisher` is a shared connection; the subscriber is this bus's own (a duplicate). */
export class RedisBus extends TypedEmitter<CloudBusEvents> implements CloudBus {
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #log: Logger;
  #closed = false;
  /** Published while the subscriber was not ready yet: delivered here too, in order (no loss at start). */
  readonly ready: Promise<void>;

  constructor(options: { redis: Redis; prefix?: string; log: Logger }) {
    super();
    this.#pub = options.redis;
    this.#sub = options.redis.duplicate();
    this.#log = options.log.child({ component: 'cloud-bus' });
    this.#channel = `${options.prefix ?? DEFAULT_REDIS_PREFIX}bus`;
    this.#sub.on('error', (err) => this.#log.debug({ err: err.message }, 'bus connection error'));
    this.#sub.on('message', (channel: string, text: string) => {
      if (channel !== this.#channel) return;
      let message: BusMessage;
      try {
        message = JSON.parse(text) as BusMessage;
      } catch {
        this.#log.warn('bus message that is not JSON, ignored');
        return;
      }
      if (!message || typeof message !== 'object' || !KINDS.has(message.kind)) return;
      this.safeEmit('message', message);
    });
    this.ready = this.#sub.subscribe(this.#channel).then(
      () => undefined,
      (err: Error) => this.#log.warn({ err: err.message }, 'bus subscribe failed'),
    );
  }

  publish(message: BusMessage): void {
    if (this.#closed) return;
    this.#pub.publish(this.#channel, JSON.stringify(message)).catch((err: Error) => {
      // Redis away: the message is lost for other replicas; statuses are re-read from the store by
      // clients that reconnect, commands are held by the store (see managed-streams).
      this.#log.warn({ err: err.message, kind: message.kind }, 'bus publish failed');
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.removeAllListeners();
    this.#sub.disconnect();
  }
}
