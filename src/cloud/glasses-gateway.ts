/**
 * The glasses WebSocket (`/glasses-ws`): one socket per user (the newest wins), JSON messages with a `type`
 * in the MentraOS names. Identity comes from `authenticate` (a bearer token, or `?userId=` in dev mode).
 * Messages that break the contract are dropped with a log line; nothing a socket sends can throw out.
 * Glasses that connect with `?commands=stream` (current firmware) get the commands as `start_stream`,
 * `stop_stream` and `keep_stream_alive`; the others get the seed's `*_rtmp_stream` names. Writes are
 * bounded: a socket that stops reading (more than MAX_BUFFERED waiting) is closed.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import {
  type CloudToGlasses,
  type GlassesDialect,
  type GlassesToCloud,
  GlassesToCloud as GlassesToCloudSchema,
  toStreamDialect,
} from '../contracts/mentra.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { GlassesLink } from './managed-streams.ts';
import { acceptAuthenticated } from './ws-upgrade.ts';

export const GLASSES_WS_PATH = '/glasses-ws';
/** Bytes a glasses socket may leave unread before it is closed (commands are small; this is a dead one). */
const MAX_BUFFERED = 256 * 1024;

export interface GlassesGatewayOptions {
  authenticate(request: IncomingMessage): Promise<string | null>;
  log: Logger;
}

export type GlassesGatewayEvents = {
  /** A message from a user's glasses, checked against the contract. */
  message: [userId: string, message: GlassesToCloud];
  /** Glasses of this user connected here (a command held for them can go now). */
  connected: [userId: string];
};

export class GlassesGateway extends TypedEmitter<GlassesGatewayEvents> implements GlassesLink {
  readonly #options: GlassesGatewayOptions;
  readonly #log: Logger;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  readonly #sockets = new Map<string, WebSocket>();
  readonly #dialects = new WeakMap<WebSocket, GlassesDialect>();

  constructor(options: GlassesGatewayOptions) {
    super();
    this.#options = options;
    this.#log = options.log.child({ component: 'glasses-gateway' });
  }

  connected(userId: string): boolean {
    return this.#sockets.get(userId)?.readyState === WebSocket.OPEN;
  }

  /** Adopts an upgrade request for GLASSES_WS_PATH (the cloud routes upgrades by path). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const dialect: GlassesDialect =
      new URL(request.url ?? '/', 'http://x').searchParams.get('commands') === 'stream' ? 'stream' : 'rtmp';
    acceptAuthenticated(this.#wss, this.#options.authenticate, { request, socket, head }, (userId, ws) => {
      this.#dialects.set(ws, dialect);
      this.#adopt(userId, ws);
    });
  }

  send(userId: string, message: CloudToGlasses): boolean {
    const ws = this.#sockets.get(userId);
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    if (ws.bufferedAmount > MAX_BUFFERED) {
      this.#log.warn({ userId }, 'glasses socket not reading: closed');
      ws.terminate();
      return false;
    }
    const wire = this.#dialects.get(ws) === 'stream' ? toStreamDialect(message) : message;
    ws.send(JSON.stringify(wire));
    return true;
  }

  close(): void {
    for (const ws of this.#sockets.values()) ws.terminate();
    this.#sockets.clear();
    this.#wss.close();
  }

  #adopt(userId: string, ws: WebSocket): void {
    const previous = this.#sockets.get(userId);
    if (previous && previous !== ws) previous.close(4000, 'replaced by a newer connection');
    this.#sockets.set(userId, ws);
    this.#log.info({ userId }, 'glasses connected');
    this.safeEmit('connected', userId);
    ws.on('message', (data) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(String(data));
      } catch {
        this.#log.warn({ userId }, 'glasses sent something that is not JSON');
        return;
      }
      const result = GlassesToCloudSchema.safeParse(parsed);
      if (!result.success) {
        this.#log.warn({ userId, type: (parsed as { type?: unknown })?.type }, 'glasses message refused');
        return;
      }
      this.safeEmit('message', userId, result.data);
    });
    ws.on('close', () => {
      if (this.#sockets.get(userId) === ws) this.#sockets.delete(userId);
      this.#log.info({ userId }, 'glasses disconnected');
    });
    ws.on('error', (err) => this.#log.warn({ userId, err: err.message }, 'glasses socket error'));
  }
}
