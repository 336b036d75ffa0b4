/**
 * The apps' WebSocket (`/app-ws`) in the MentraOS names: `managed_stream_request`, `managed_stream_stop` and
 * `stream_status_check` in, `managed_stream_status` out, fanned out to every socket of the user whose app
 * watches the stream. Identity comes from `authenticate` (a bearer token, or `?userId=` in dev mode).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { AppToCloud, type ManagedStreamStatus } from '../contracts/mentra.ts';
import type { Logger } from '../shared/logger.ts';
import { ManagedStreamError, type ManagedStreams } from './managed-streams.ts';
import { acceptAuthenticated } from './ws-upgrade.ts';

export const APP_WS_PATH = '/app-ws';

interface AppSocket {
  userId: string;
  ws: WebSocket;
  /** Apps that asked through this socket. */
  packages: Set<string>;
}

export class AppGateway {
  readonly #streams: ManagedStreams;
  readonly #authenticate: (request: IncomingMessage) => Promise<string | null>;
  readonly #log: Logger;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  readonly #sockets = new Set<AppSocket>();
  readonly #onStatus = (who: { userId: string; viewers: string[] }, status: ManagedStreamStatus): void => {
    for (const s of this.#sockets) {
      if (
        s.userId === who.userId &&
        (who.viewers.some((v) => s.packages.has(v)) ||
          status.status === 'stopped' ||
          status.status === 'error')
      ) {
        this.#send(s, status);
      }
    }
  };

  constructor(options: {
    streams: ManagedStreams;
    authenticate: (request: IncomingMessage) => Promise<string | null>;
    log: Logger;
  }) {
    this.#streams = options.streams;
    this.#authenticate = options.authenticate;
    this.#log = options.log.child({ component: 'app-gateway' });
    this.#streams.on('status', this.#onStatus);
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    acceptAuthenticated(this.#wss, this.#authenticate, { request, socket, head }, (userId, ws) =>
      this.#adopt(userId, ws),
    );
  }

  close(): void {
    this.#streams.off('status', this.#onStatus);
    for (const s of this.#sockets) s.ws.terminate();
    this.#sockets.clear();
    this.#wss.close();
  }

  #adopt(userId: string, ws: WebSocket): void {
    const s: AppSocket = { userId, ws, packages: new Set() };
    this.#sockets.add(s);
    ws.on('message', (data) => void this.#onMessage(s, String(data)));
    ws.on('close', () => this.#sockets.delete(s));
    ws.on('error', (err) => this.#log.warn({ userId, err: err.message }, 'app socket error'));
  }

  async #onMessage(s: AppSocket, text: string): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.#send(s, { type: 'managed_stream_status', status: 'error', message: 'not JSON' });
    }
    const result = AppToCloud.safeParse(parsed);
    if (!result.success)
      return this.#send(s, {
        type: 'managed_stream_status',
        status: 'error',
        message: 'unknown or invalid message',
      });
    const message = result.data;
    try {
      if (message.type === 'managed_stream_request') {
        s.packages.add(message.packageName);
        this.#send(
          s,
          await this.#streams.request(s.userId, message.packageName, message.restreamDestinations ?? [], {
            recording: message.recording?.mode,
          }),
        );
      } else if (message.type === 'managed_stream_stop') {
        s.packages.delete(message.packageName);
        await this.#streams.stop(s.userId, message.packageName);
      } else {
        const stream = await this.#streams.loadByUser(s.userId);
        this.#send(
          s,
          stream ? this.#streams.statusOf(stream) : { type: 'managed_stream_status', status: 'stopped' },
        );
      }
    } catch (err) {
      const reason = err instanceof ManagedStreamError ? err.message : 'internal error';
      if (!(err instanceof ManagedStreamError)) this.#log.error({ err }, 'app request failed');
      this.#send(s, { type: 'managed_stream_status', status: 'error', message: reason });
    }
  }

  #send(s: AppSocket, status: ManagedStreamStatus): void {
    if (s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify(status));
  }
}
