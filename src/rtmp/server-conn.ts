/**
 * One RTMP connection, server side, publish only. The only layer that touches the socket: it feeds bytes
 * down through handshake → chunk reader → messages → AMF0, answers commands the way real publishers expect
 * (rtmp.md "Command flow"), and turns media into a Publish. Everything thrown below is caught here and
 * closes this one connection with a logged reason and a counted code; nothing reaches the process.
 */

import { FlvTagType } from '../media/flv-tag.ts';
import { type ErrorCode, ErrorCodes, RelayError, toRelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type Amf0Encodable, type Amf0Object, type Amf0Value, newAmf0Object } from './amf0.ts';
import { ChunkReader } from './chunk-reader.ts';
import { ChunkWriter } from './chunk-writer.ts';
import { ServerHandshake } from './handshake.ts';
import {
  CommandCsid,
  decodeMessage,
  encodeMessage,
  type Message,
  MessageType,
  splitAggregate,
  UserControlEvent,
} from './messages.ts';
import type { EndReason, Publish } from './publish.ts';
import { type PublishTarget, parsePublishTarget } from './stream-key.ts';

/** The part of a socket the connection uses; `net.Socket` satisfies it. */
export interface ConnSocket {
  readonly remoteAddress?: string | undefined;
  readonly writableLength: number;
  readonly destroyed: boolean;
  write(data: Buffer): boolean;
  end(): void;
  destroy(): void;
  on(event: 'data', listener: (data: Buffer) => void): this;
  on(event: 'end' | 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export interface ConnectionLimits {
  maxMessageSize: number;
  maxChunkStreams: number;
  maxBufferedBytes: number;
  /** Close the peer when this many bytes of our replies sit unread in the socket. */
  maxWriteBuffer: number;
  handshakeTimeoutMs: number;
  /** Close when no media arrives for this long (counted from the end of the handshake). */
  idleTimeoutMs: number;
  /** Window Acknowledgement Size and peer bandwidth we announce. */
  windowAckSize: number;
  /** Chunk size for our replies. */
  outChunkSize: number;
}

export type AuthOutcome =
  | { allow: true }
  | {
      allow: false;
      status: 'NetStream.Publish.BadName' | 'NetStream.Publish.Unauthorized';
      code: ErrorCode;
      reason: string;
    };

/** What a connection needs from its server (style rule 9: the consumer declares the small interface). */
export interface ConnectionHost {
  /** Decides a publish: name checks, the authorization hook. Must not throw. */
  authorizePublish(conn: ServerConnection, target: PublishTarget): Promise<AuthOutcome>;
  /** Registers an authorized publish (taking over an older one) and returns it. */
  startPublish(conn: ServerConnection, target: PublishTarget): Publish;
  /** Counts a protocol or policy failure by code. */
  countError(code: ErrorCode): void;
}

export const ConnectionState = {
  Handshake: 'handshake',
  AwaitingConnect: 'awaiting-connect',
  Connected: 'connected',
  Authorizing: 'authorizing',
  Publishing: 'publishing',
  Unpublished: 'unpublished',
  Closed: 'closed',
} as const;
export type ConnectionStateName = (typeof ConnectionState)[keyof typeof ConnectionState];

export type ConnectionEvents = {
  /** Private to the server: the connection is gone and released everything it held. */
  '@close': [EndReason];
};

const FMS_VERSION = 'FMS/3,0,1,123';
const PUBLISH_STATUS_CSID = 5;
/** Most createStream calls answered per connection (each returns a new stream id). */
const MAX_STREAMS_PER_CONNECTION = 8;

export class ServerConnection extends TypedEmitter<ConnectionEvents> {
  readonly id: number;
  readonly remoteAddress: string;
  readonly #socket: ConnSocket;
  readonly #host: ConnectionHost;
  readonly #limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #handshake = new ServerHandshake();
  readonly #reader: ChunkReader;
  readonly #writer = new ChunkWriter();
  #state: ConnectionStateName = ConnectionState.Handshake;
  #timer: NodeJS.Timeout | null = null;
  #flushTimer: NodeJS.Timeout | null = null;
  #app: unknown;
  #tcUrl: unknown;
  #nextStreamId = 1;
  #publish: Publish | null = null;
  #authSeq = 0;
  #bytesIn = 0;
  #peerAckWindow = 0;
  #lastAckAt = 0;
  /** Media that arrived outside of a publish (ignored, counted). */
  ignoredMedia = 0;

  constructor(options: {
    id: number;
    socket: ConnSocket;
    host: ConnectionHost;
    limits: ConnectionLimits;
    log: Logger;
  }) {
    super();
    this.id = options.id;
    this.#socket = options.socket;
    this.#host = options.host;
    this.#limits = options.limits;
    this.remoteAddress = options.socket.remoteAddress ?? 'unknown';
    this.#log = options.log.child({ conn: this.id, remote: this.remoteAddress });
    this.#reader = new ChunkReader({
      maxMessageSize: options.limits.maxMessageSize,
      maxChunkStreams: options.limits.maxChunkStreams,
      maxBufferedBytes: options.limits.maxBufferedBytes,
    });
    this.#timer = setTimeout(
      () => this.#fail(new RelayError(ErrorCodes.RTMP_HANDSHAKE_TIMEOUT, 'handshake not completed in time')),
      options.limits.handshakeTimeoutMs,
    );
    this.#socket.on('data', this.#onData);
    this.#socket.on('end', () => this.close({ kind: 'disconnect', message: 'peer closed the connection' }));
    this.#socket.on('close', () => this.close({ kind: 'disconnect', message: 'connection closed' }));
    this.#socket.on('error', (err) =>
      this.close({ kind: 'disconnect', code: ErrorCodes.RTMP_SOCKET_ERROR, message: err.message }),
    );
  }

  get state(): ConnectionStateName {
    return this.#state;
  }

  get publish(): Publish | null {
    return this.#publish;
  }

  get bytesIn(): number {
    return this.#bytesIn;
  }

  /**
   * Closes the connection once: ends its publish with `reason`, releases its timers and the socket.
   * `flush` lets a final status message reach the peer before the socket is destroyed.
   */
  close(reason: EndReason, options: { flush?: boolean } = {}): void {
    if (this.#state === ConnectionState.Closed) return;
    this.#state = ConnectionState.Closed;
    this.#reader.stop();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#publish?.end(reason);
    if (options.flush && !this.#socket.destroyed) {
      this.#socket.end();
      // The peer may never read: destroy anyway after a moment. Owned here, cleared on the socket's close.
      this.#flushTimer = setTimeout(() => this.#socket.destroy(), 2000);
      this.#flushTimer.unref();
      this.#socket.on('close', () => {
        if (this.#flushTimer) clearTimeout(this.#flushTimer);
      });
    } else {
      this.#socket.destroy();
    }
    const level = reason.kind === 'error' || reason.kind === 'idle-timeout' ? 'warn' : 'info';
    this.#log[level](
      { reason: reason.kind, code: reason.code, bytesIn: this.#bytesIn },
      `connection closed: ${reason.message ?? reason.kind}`,
    );
    this.safeEmit('@close', reason);
  }

  #fail(err: unknown): void {
    const e = toRelayError(err, ErrorCodes.RTMP_MESSAGE_MALFORMED);
    this.#host.countError(e.code);
    const kind = e.code === ErrorCodes.RTMP_IDLE_TIMEOUT ? 'idle-timeout' : 'error';
    this.close({ kind, code: e.code, message: e.message });
  }

  readonly #onData = (data: Buffer): void => {
    if (this.#state === ConnectionState.Closed) return;
    this.#bytesIn += data.length;
    try {
      let rest = data;
      if (this.#state === ConnectionState.Handshake) {
        const step = this.#handshake.push(data);
        if (step.reply) this.#write(step.reply);
        if (!step.done) return;
        this.#state = ConnectionState.AwaitingConnect;
        this.#armIdleTimer();
        rest = step.rest;
      }
      if (rest.length > 0) this.#reader.push(rest, this.#onMessage);
      this.#maybeAcknowledge();
    } catch (err) {
      this.#fail(err);
    }
  };

  #armIdleTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () =>
        this.#fail(
          new RelayError(ErrorCodes.RTMP_IDLE_TIMEOUT, `no media for ${this.#limits.idleTimeoutMs} ms`),
        ),
      this.#limits.idleTimeoutMs,
    );
  }

  #maybeAcknowledge(): void {
    if (this.#peerAckWindow <= 0 || this.#state === ConnectionState.Closed) return;
    if (this.#bytesIn - this.#lastAckAt >= this.#peerAckWindow) {
      this.#lastAckAt = this.#bytesIn;
      this.#send({ kind: 'acknowledgement', sequence: this.#bytesIn >>> 0 });
    }
  }

  readonly #onMessage = (raw: Parameters<Parameters<ChunkReader['push']>[1]>[0]): void => {
    const message = decodeMessage(raw);
    switch (message.kind) {
      case 'set-chunk-size':
        this.#reader.setChunkSize(message.size);
        return;
      case 'abort':
        this.#reader.abort(message.csid);
        return;
      case 'window-ack-size':
        this.#peerAckWindow = message.size;
        return;
      case 'user-control':
        if (message.event === UserControlEvent.PingRequest) {
          this.#send({ kind: 'user-control', event: UserControlEvent.PingResponse, value: message.value });
        }
        return;
      case 'audio':
        return this.#onMedia(FlvTagType.Audio, message.timestamp, message.data);
      case 'video':
        return this.#onMedia(FlvTagType.Video, message.timestamp, message.data);
      case 'aggregate':
        for (const tag of splitAggregate(message.data, message.timestamp)) {
          if (tag.type === MessageType.Audio) this.#onMedia(FlvTagType.Audio, tag.timestamp, tag.data);
          else if (tag.type === MessageType.Video) this.#onMedia(FlvTagType.Video, tag.timestamp, tag.data);
        }
        return;
      case 'data':
        if (this.#state === ConnectionState.Publishing)
          this.#publish!.pushData(message.values, message.body, message.timestamp);
        return;
      case 'command':
        return this.#onCommand(message);
      default:
        return; // acknowledgements, peer bandwidth, shared objects: nothing to do for a publish-only server
    }
  };

  #onMedia(type: typeof FlvTagType.Audio | typeof FlvTagType.Video, timestamp: number, data: Buffer): void {
    if (this.#state !== ConnectionState.Publishing) {
      this.ignoredMedia++; // nothing is accepted before NetStream.Publish.Start
      return;
    }
    this.#timer?.refresh();
    this.#publish!.pushMedia(type, timestamp, data);
  }

  #onCommand(cmd: Extract<Message, { kind: 'command' }>): void {
    const state = this.#state;
    if (cmd.name !== 'connect' && state === ConnectionState.AwaitingConnect) {
      throw new RelayError(ErrorCodes.RTMP_COMMAND_UNEXPECTED, `"${cmd.name}" before connect`);
    }
    switch (cmd.name) {
      case 'connect':
        return this.#onConnect(cmd);
      case 'releaseStream':
      case 'FCPublish':
        // rtmp2sink sends these with transaction id 0, which asks for no answer.
        if (cmd.transactionId !== 0) this.#reply(cmd.transactionId, '_result', null);
        return;
      case 'createStream': {
        if (this.#nextStreamId > MAX_STREAMS_PER_CONNECTION) {
          throw new RelayError(ErrorCodes.RTMP_COMMAND_UNEXPECTED, 'too many createStream calls');
        }
        this.#reply(cmd.transactionId, '_result', null, this.#nextStreamId++);
        return;
      }
      case 'publish':
        return this.#onPublish(cmd);
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        return this.#onUnpublish(cmd.name);
      case 'play':
      case 'play2':
        throw new RelayError(ErrorCodes.RTMP_COMMAND_UNEXPECTED, 'this server accepts publishers only');
      default:
        this.#log.debug({ command: cmd.name }, 'ignored command');
        return;
    }
  }

  #onConnect(cmd: Extract<Message, { kind: 'command' }>): void {
    if (this.#state !== ConnectionState.AwaitingConnect) {
      throw new RelayError(ErrorCodes.RTMP_COMMAND_UNEXPECTED, 'connect sent twice');
    }
    const params = cmd.args[0];
    const obj: Amf0Object =
      params !== null && typeof params === 'object' && !Array.isArray(params) && !(params instanceof Date)
        ? params
        : newAmf0Object();
    this.#app = obj.app;
    this.#tcUrl = obj.tcUrl ?? obj.tcurl;
    this.#state = ConnectionState.Connected;
    const out = this.#limits.outChunkSize;
    this.#send(
      { kind: 'window-ack-size', size: this.#limits.windowAckSize },
      { kind: 'set-peer-bandwidth', size: this.#limits.windowAckSize, limitType: 2 },
      { kind: 'set-chunk-size', size: out },
    );
    this.#writer.setChunkSize(out);
    this.#reply(
      cmd.transactionId,
      '_result',
      { fmsVer: FMS_VERSION, capabilities: 31 },
      {
        level: 'status',
        code: 'NetConnection.Connect.Success',
        description: 'Connection succeeded.',
        objectEncoding: 0,
      },
    );
  }

  #onPublish(cmd: Extract<Message, { kind: 'command' }>): void {
    if (this.#state !== ConnectionState.Connected && this.#state !== ConnectionState.Unpublished) {
      throw new RelayError(ErrorCodes.RTMP_COMMAND_UNEXPECTED, `publish while ${this.#state}`);
    }
    const streamId = cmd.streamId;
    const parsed = parsePublishTarget({ tcUrl: this.#tcUrl, app: this.#app, name: cmd.args[1] });
    if (!parsed.ok) {
      this.#refusePublish(streamId, {
        allow: false,
        status: 'NetStream.Publish.BadName',
        code: ErrorCodes.RTMP_BAD_NAME,
        reason: parsed.reason,
      });
      return;
    }
    const target = parsed.target;
    this.#state = ConnectionState.Authorizing;
    const seq = ++this.#authSeq;
    this.#log.info({ key: target.key }, 'publish requested');
    void this.#host
      .authorizePublish(this, target)
      .then((outcome) => this.#onAuthorized(seq, streamId, target, outcome))
      .catch((err: unknown) => this.#fail(toRelayError(err, ErrorCodes.RTMP_AUTH_FAILED)));
  }

  #onAuthorized(seq: number, streamId: number, target: PublishTarget, outcome: AuthOutcome): void {
    if (this.#state !== ConnectionState.Authorizing || seq !== this.#authSeq) return; // closed or cancelled meanwhile
    if (!outcome.allow) return this.#refusePublish(streamId, outcome);
    try {
      this.#send({ kind: 'user-control', event: UserControlEvent.StreamBegin, value: streamId });
      this.#sendStatus(streamId, 'status', 'NetStream.Publish.Start', `${target.key} is now published.`);
      if ((this.#state as ConnectionStateName) === ConnectionState.Closed) return; // the write overflowed
      this.#state = ConnectionState.Publishing;
      this.#publish = this.#host.startPublish(this, target);
      this.#publish.once('@refuse', (reason) => this.#refuseLivePublish(streamId, reason));
      this.#armIdleTimer();
    } catch (err) {
      this.#fail(err);
    }
  }

  #refusePublish(streamId: number, outcome: Extract<AuthOutcome, { allow: false }>): void {
    this.#host.countError(outcome.code);
    this.#sendStatus(streamId, 'error', outcome.status, outcome.reason);
    this.close(
      { kind: 'error', code: outcome.code, message: `publish refused: ${outcome.reason}` },
      { flush: true },
    );
  }

  /** A live publish the relay cannot use: NetStream.Publish.Failed with the reason, then the close. */
  #refuseLivePublish(streamId: number, reason: string): void {
    if (this.#state !== ConnectionState.Publishing) return;
    this.#sendStatus(streamId, 'error', 'NetStream.Publish.Failed', reason);
    this.close(
      { kind: 'error', code: ErrorCodes.FFMPEG_START_FAILED, message: `publish refused: ${reason}` },
      { flush: true },
    );
  }

  #onUnpublish(command: string): void {
    if (this.#state === ConnectionState.Authorizing) {
      this.#authSeq++;
      this.#state = ConnectionState.Unpublished;
      return;
    }
    if (this.#state !== ConnectionState.Publishing) return;
    this.#state = ConnectionState.Unpublished;
    this.#publish!.end({ kind: 'unpublish', message: command });
    this.#publish = null;
  }

  #reply(transactionId: number, name: string, ...args: Amf0Encodable[]): void {
    this.#send({ kind: 'command', streamId: 0, name, transactionId, args: args as Amf0Value[] });
  }

  #sendStatus(streamId: number, level: 'status' | 'error', code: string, description: string): void {
    const raw = encodeMessage({
      kind: 'command',
      streamId,
      name: 'onStatus',
      transactionId: 0,
      args: [null, { level, code, description } as Amf0Object],
    });
    this.#write(this.#writer.write({ ...raw, csid: PUBLISH_STATUS_CSID }));
  }

  #send(...messages: Message[]): void {
    const parts = messages.map((m) => {
      const raw = encodeMessage(m);
      return this.#writer.write(m.kind === 'command' ? { ...raw, csid: CommandCsid } : raw);
    });
    this.#write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  #write(data: Buffer): void {
    if (this.#state === ConnectionState.Closed || this.#socket.destroyed) return;
    this.#socket.write(data);
    if (this.#socket.writableLength > this.#limits.maxWriteBuffer) {
      this.#fail(
        new RelayError(ErrorCodes.RTMP_SLOW_PEER, `peer left ${this.#socket.writableLength} bytes unread`),
      );
    }
  }
}
