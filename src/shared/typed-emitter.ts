/**
 * Typed events (mediasoup `enhancedEvents.ts`, hls.js `events.ts`): every emitter declares its event map, and
 * `safeEmit` keeps a throwing listener from breaking the state machine that emitted the event.
 */
import { EventEmitter } from 'node:events';

// biome-ignore lint/suspicious/noExplicitAny: listener argument tuples are checked per event map
export type EventMap = Record<string, any[]>;

export class TypedEmitter<E extends EventMap> {
  readonly #emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    // Many consumers may watch one stream; a leak shows up in tests, not as a warning at 11 listeners.
    this.#emitter.setMaxListeners(0);
  }

  on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Alias of `off`, so `events.once()` and other EventEmitter helpers work on typed emitters. */
  removeListener<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    return this.off(event, listener);
  }

  removeAllListeners<K extends keyof E & string>(event?: K): this {
    if (event === undefined) this.#emitter.removeAllListeners();
    else this.#emitter.removeAllListeners(event);
    return this;
  }

  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#emitter.listenerCount(event);
  }

  /** Emits to every listener; a listener that throws is reported through `onListenerError`, never rethrown. */
  protected safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    const listeners = this.#emitter.listeners(event) as ((...a: E[K]) => void)[];
    for (const listener of listeners) {
      try {
        listener(...args);
      } catch (err) {
        this.onListenerError(event, err);
      }
    }
    return listeners.length > 0;
  }

  /** Override to log; the default writes to stderr so a buggy listener is never silent. */
  protected onListenerError(event: string, err: unknown): void {
    process.emitWarning(`listener for "${event}" threw: ${err instanceof Error ? err.stack : String(err)}`);
  }
}

/** Resolves with the event's arguments the next time it fires (tests await events instead of sleeping). */
export function onceEvent<E extends EventMap, K extends keyof E & string>(
  emitter: TypedEmitter<E>,
  event: K,
): Promise<E[K]> {
  return new Promise((resolve) => {
    emitter.once(event, (...args: E[K]) => resolve(args));
  });
}
