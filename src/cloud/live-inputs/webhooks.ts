/**
 * Live input webhooks (opt-in): once the account set a notification URL (`PUT /stream/webhook`, Cloudflare's
 * subscription call), every `live_input.connected` and `live_input.disconnected` is POSTed there in
 * Cloudflare's Stream Live notification shape (`{name, text, data: {notification_name, input_id,
 * event_type, updated_at}, ts}`), signed the way Cloudflare Stream signs its webhooks: a
 * `Webhook-Signature: time={unix seconds},sig1={hex HMAC-SHA256 of "{time}.{body}" under the secret}` header.
 *
 * Deliveries are fire-and-forget, one try each with a timeout, at most `maxInFlight` at once (more are
 * dropped, counted, and warned about at most once a minute), and `close()` aborts those in flight. The
 * secret never reaches a log; of the URL only its host is logged (path and query may carry a token).
 */
import { createHmac } from 'node:crypto';
import type { Logger } from '../../shared/logger.ts';
import type { WebhookConfig } from './state.ts';

export type LiveInputEvent = 'live_input.connected' | 'live_input.disconnected';

export interface WebhookSenderOptions {
  /** The current subscription (the store's; any replica may have set it). */
  config: () => Promise<WebhookConfig | null>;
  log: Logger;
  timeoutMs?: number;
  maxInFlight?: number;
  now?: () => number;
}

/** The `Webhook-Signature` header value for a body sent at `timeSeconds`. */
export function webhookSignature(secret: string, timeSeconds: number, body: string): string {
  const sig = createHmac('sha256', secret).update(`${timeSeconds}.${body}`).digest('hex');
  return `time=${timeSeconds},sig1=${sig}`;
}

/** Cloudflare's Stream Live notification body. */
export function notificationBody(uid: string, event: LiveInputEvent, at: number): string {
  const updated = new Date(at).toISOString();
  return JSON.stringify({
    name: 'Stream Live Input',
    text: `Notification type: Stream Live Input\nInput ID: ${uid}\nEvent type: ${event}\nUpdated at: ${updated}`,
    data: {
      notification_name: 'Stream Live Input',
      input_id: uid,
      event_type: event,
      updated_at: updated,
    },
    ts: Math.floor(at / 1000),
  });
}

const WARN_EVERY_MS = 60_000;

export class WebhookSender {
  readonly #o: WebhookSenderOptions;
  readonly #now: () => number;
  readonly #inFlight = new Set<AbortController>();
  #dropped = 0;
  #lastWarn = 0;
  #closed = false;
  /** Deliveries answered 2xx, and the rest (refused, failed, timed out). */
  readonly counts = { sent: 0, failed: 0, dropped: 0 };

  constructor(options: WebhookSenderOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Sends the event to the subscription, if any; never throws, never waits for the receiver. */
  notify(uid: string, event: LiveInputEvent): void {
    if (this.#closed) return;
    void this.#send(uid, event, this.#now());
  }

  async #send(uid: string, event: LiveInputEvent, at: number): Promise<void> {
    let config: WebhookConfig | null;
    try {
      config = await this.#o.config();
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message, event }, 'webhook not sent: store unreachable');
      return;
    }
    if (!config || this.#closed) return;
    if (this.#inFlight.size >= (this.#o.maxInFlight ?? 100)) {
      this.#dropped++;
      this.counts.dropped++;
      if (this.#now() - this.#lastWarn >= WARN_EVERY_MS) {
        this.#lastWarn = this.#now();
        this.#o.log.warn({ dropped: this.#dropped }, 'webhook receiver too slow: events dropped');
        this.#dropped = 0;
      }
      return;
    }
    const abort = new AbortController();
    this.#inFlight.add(abort);
    const timer = setTimeout(() => abort.abort(), this.#o.timeoutMs ?? 5000);
    const body = notificationBody(uid, event, at);
    const where = new URL(config.notificationUrl).host; // not the path or query: they may carry a token
    try {
      const res = await fetch(config.notificationUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-signature': webhookSignature(config.secret, Math.floor(this.#now() / 1000), body),
        },
        body,
        signal: abort.signal,
        redirect: 'manual',
      });
      await res.arrayBuffer();
      if (res.ok) this.counts.sent++;
      else {
        this.counts.failed++;
        this.#o.log.warn({ url: where, status: res.status, event }, 'webhook refused');
      }
    } catch (err) {
      this.counts.failed++;
      if (!this.#closed)
        this.#o.log.warn({ url: where, err: (err as Error).message, event }, 'webhook failed');
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(abort);
    }
  }

  /** Aborts deliveries in flight; later events are not sent. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const a of this.#inFlight) a.abort();
    this.#inFlight.clear();
  }
}
