/**
 * The RTMP server: a TCP listener (and optionally an RTMPS one: TLS in front of the very same connection
 * code), connection limits (overall and per IP), the live-publish registry with the takeover rule, and the
 * authorization hook. It owns its connections (a Set, closed with it) and emits
 * typed `publish`, `takeover` and `end` events; what a publish yields is in ./publish.ts.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { AuthDecision, AuthorizePublish, PublishAuthRequest } from '../contracts/publish.ts';
import { type ErrorCode, ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type EndReason, Publish, type PublishInfo } from './publish.ts';
import {
  type AuthOutcome,
  type ConnectionHost,
  type ConnectionLimits,
  type ConnSocket,
  ServerConnection,
} from './server-conn.ts';
import type { PublishTarget } from './stream-key.ts';

export type { AuthDecision, AuthorizePublish, PublishAuthRequest } from '../contracts/publish.ts';

export interface RtmpServerOptions {
  log: Logger;
  authorize?: AuthorizePublish;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  /** How long the authorization hook may take before the publish is refused. */
  authTimeoutMs?: number;
  limits?: Partial<ConnectionLimits>;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxMessageSize: 8 * 1024 * 1024,
  maxChunkStreams: 64,
  maxBufferedBytes: 16 * 1024 * 1024,
  maxWriteBuffer: 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  windowAckSize: 2_500_000,
  outChunkSize: 4096,
};

export interface TakeoverInfo {
  key: string;
  previous: PublishInfo;
  next: PublishInfo;
}

export type RtmpServerEvents = {
  /** An authorized publish went live; attach to its `start`/`tag`/`end` events. */
  publish: [Publish];
  /** A newer publish of a live key replaced an older one (emitted before the old one ends). */
  takeover: [TakeoverInfo];
  /** A publish ended; `reason.kind` says how. */
  end: [Publish, EndReason];
};

export interface RtmpServerStats {
  connectionsAccepted: number;
  connectionsRefused: number;
  connectionsOpen: number;
  publishes: number;
  takeovers: number;
  authRefusals: number;
  /** Failures by error code. */
  errors: Map<ErrorCode, number>;
}

export class RtmpServer extends TypedEmitter<RtmpServerEvents> implements ConnectionHost {
  readonly stats: RtmpServerStats = {
    connectionsAccepted: 0,
    connectionsRefused: 0,
    connectionsOpen: 0,
    publishes: 0,
    takeovers: 0,
    authRefusals: 0,
    errors: new Map(),
  };
  readonly #log: Logger;
  readonly #authorize: AuthorizePublish;
  readonly #limits: ConnectionLimits;
  readonly #maxConnections: number;
  readonly #maxPerIp: number;
  readonly #authTimeoutMs: number;
  readonly #connections = new Set<ServerConnection>();
  readonly #perIp = new Map<string, number>();
  /** Live publishes by stream key. */
  readonly #live = new Map<string, { conn: ServerConnection; publish: Publish }>();
  readonly #servers: net.Server[] = [];
  #plainListening = false;
  #tlsListening = false;
  #nextId = 1;
  #closed = false;

  constructor(options: RtmpServerOptions) {
    super();
    this.#log = options.log.child({ component: 'rtmp' });
    this.#authorize = options.authorize ?? (() => ({ allow: true }));
    this.#limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
    this.#maxConnections = options.maxConnections ?? 1000;
    this.#maxPerIp = options.maxConnectionsPerIp ?? 20;
    this.#authTimeoutMs = options.authTimeoutMs ?? 10_000;
  }

  protected override onListenerError(event: string, err: unknown): void {
    this.#log.error({ err, event }, 'an RTMP server event listener threw');
  }

  /** Live publishes, one per key. */
  get publishes(): Publish[] {
    return [...this.#live.values()].map((e) => e.publish);
  }

  get connections(): ReadonlySet<ServerConnection> {
    return this.#connections;
  }

  /** Starts listening; resolves with the bound port (use port 0 for a free one). */
  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    if (this.#plainListening) throw new Error('already listening');
    this.#plainListening = true;
    const server = net.createServer({ noDelay: true }, (socket) => this.handleSocket(socket));
    return this.#bind(server, port, host, 'RTMP listening');
  }

  /**
   * RTMPS: a TLS listener whose decrypted sockets go through the same connection code and limits. The TLS
   * handshake gets the RTMP handshake's timeout; a failed one is counted and logged (no secret in it).
   */
  async listenTls(
    port: number,
    host: string,
    credentials: { key: string | Buffer; cert: string | Buffer },
  ): Promise<number> {
    if (this.#tlsListening) throw new Error('already listening for RTMPS');
    this.#tlsListening = true;
    const server = tls.createServer(
      {
        key: credentials.key,
        cert: credentials.cert,
        handshakeTimeout: this.#limits.handshakeTimeoutMs ?? 10_000,
        minVersion: 'TLSv1.2',
      },
      (socket) => {
        socket.setNoDelay(true);
        this.handleSocket(socket);
      },
    );
    // TLS handshakes in flight count against the connection cap too (a handshake flood is a flood).
    server.maxConnections = this.#maxConnections;
    server.on('tlsClientError', (err, socket) => {
      this.countError(ErrorCodes.RTMPS_HANDSHAKE_FAILED);
      this.#log.warn({ remote: socket.remoteAddress, reason: err.message }, 'RTMPS handshake failed');
      socket.destroy();
    });
    return this.#bind(server, port, host, 'RTMPS listening');
  }

  async #bind(server: net.Server, port: number, host: string, message: string): Promise<number> {
    server.on('error', (err) => this.#log.error({ err }, 'listener error'));
    this.#servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    this.#log.info({ port: bound, host }, message);
    return bound;
  }

  /** Adopts an accepted socket (the listener calls it; tests may hand in any ConnSocket). */
  handleSocket(
    socket: ConnSocket & { setKeepAlive?: (on: boolean, delay: number) => unknown },
  ): ServerConnection | null {
    const ip = socket.remoteAddress ?? 'unknown';
    const refuse = (code: ErrorCode, why: string): null => {
      this.stats.connectionsRefused++;
      this.countError(code);
      this.#log.warn({ remote: ip, code }, `connection refused: ${why}`);
      socket.destroy();
      return null;
    };
    if (this.#closed) return refuse(ErrorCodes.RTMP_TOO_MANY_CONNECTIONS, 'server closing');
    if (this.#connections.size >= this.#maxConnections) {
      return refuse(
        ErrorCodes.RTMP_TOO_MANY_CONNECTIONS,
        `${this.#connections.size} connections open: at most RTMP_MAX_CONNECTIONS (${this.#maxConnections})`,
      );
    }
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (fromIp >= this.#maxPerIp) {
      return refuse(
        ErrorCodes.RTMP_TOO_MANY_CONNECTIONS_PER_IP,
        `${fromIp} connections open from this address: at most RTMP_MAX_CONNECTIONS_PER_IP (${this.#maxPerIp})`,
      );
    }
    socket.setKeepAlive?.(true, 10_000);
    const conn = new ServerConnection({
      id: this.#nextId++,
      socket,
      host: this,
      limits: this.#limits,
      log: this.#log,
    });
    this.#connections.add(conn);
    this.#perIp.set(ip, fromIp + 1);
    this.stats.connectionsAccepted++;
    this.stats.connectionsOpen = this.#connections.size;
    conn.once('@close', () => {
      this.#connections.delete(conn);
      const n = (this.#perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.#perIp.delete(ip);
      else this.#perIp.set(ip, n);
      this.stats.connectionsOpen = this.#connections.size;
    });
    return conn;
  }

  countError(code: ErrorCode): void {
    this.stats.errors.set(code, (this.stats.errors.get(code) ?? 0) + 1);
  }

  async authorizePublish(conn: ServerConnection, target: PublishTarget): Promise<AuthOutcome> {
    const request: PublishAuthRequest = {
      key: target.key,
      userId: target.userId,
      streamId: target.streamId,
      token: target.token,
      params: target.params,
      remoteAddress: conn.remoteAddress,
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      const decision = await Promise.race([
        Promise.resolve().then(() => this.#authorize(request)),
        new Promise<AuthDecision>((resolve) => {
          timer = setTimeout(
            () =>
              resolve({
                allow: false,
                reason: `authorization timed out: the check must answer within ${this.#authTimeoutMs / 1000} s`,
              }),
            this.#authTimeoutMs,
          );
        }),
      ]);
      if (decision.allow) return { allow: true };
      // The key names what was refused (it passed the naming contract, so it is safe to echo and log).
      const reason = `${target.key}: ${decision.reason}`;
      if (decision.badName) {
        return { allow: false, status: 'NetStream.Publish.BadName', code: ErrorCodes.RTMP_BAD_NAME, reason };
      }
      this.stats.authRefusals++;
      return {
        allow: false,
        status: 'NetStream.Publish.Unauthorized',
        code: ErrorCodes.RTMP_UNAUTHORIZED,
        reason,
      };
    } catch (err) {
      this.stats.authRefusals++;
      this.#log.error({ err, key: target.key }, 'authorization hook failed');
      return {
        allow: false,
        status: 'NetStream.Publish.Unauthorized',
        code: ErrorCodes.RTMP_AUTH_FAILED,
        reason: `${target.key}: the authorization check failed (see the relay's log)`,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  startPublish(conn: ServerConnection, target: PublishTarget): Publish {
    const publish = new Publish(conn.id, target, conn.remoteAddress);
    const previous = this.#live.get(target.key);
    if (previous) {
      this.stats.takeovers++;
      this.#log.info({ key: target.key, previous: previous.conn.id, next: conn.id }, 'takeover');
      this.safeEmit('takeover', { key: target.key, previous: previous.publish.info, next: publish.info });
      previous.conn.close({ kind: 'takeover', message: `taken over by connection ${conn.id}` });
    }
    this.#live.set(target.key, { conn, publish });
    this.stats.publishes++;
    publish.once('end', (reason) => {
      if (this.#live.get(target.key)?.publish === publish) this.#live.delete(target.key);
      this.#log.info(
        { key: target.key, reason: reason.kind, code: reason.code, ...publish.stats },
        `publish ended: ${reason.message ?? reason.kind}`,
      );
      this.safeEmit('end', publish, reason);
    });
    this.#log.info({ key: target.key, remote: conn.remoteAddress }, 'publish started');
    this.safeEmit('publish', publish);
    return publish;
  }

  /** Closes a live publish by key (operator kick). Returns false when none is live. */
  kick(key: string, message = 'kicked'): boolean {
    const entry = this.#live.get(key);
    if (!entry) return false;
    entry.conn.close({ kind: 'kicked', message });
    return true;
  }

  /** Stops listening and closes every connection; resolves when the listener is closed. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const servers = this.#servers.splice(0);
    for (const conn of [...this.#connections])
      conn.close({ kind: 'server-close', message: 'server closing' });
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}
