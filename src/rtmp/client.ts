/**
 * RTMP publishing client: pushes one live stream to an RTMP or RTMPS ingest (YouTube, Twitch, Facebook, or
 * any RTMP server) the way FFmpeg's `rtmpproto.c` does it: simple handshake; `connect` {app, type
 * nonprivate, flashVer, tcUrl}; Set Chunk Size once connected; `releaseStream`, `FCPublish` and
 * `createStream` without waiting for their replies; `publish(name, "live")` on the new stream; media only
 * after `NetStream.Publish.Start`; `FCUnpublish` + `deleteStream` on close. It answers pings, acknowledges
 * the server's window and answers Set Peer Bandwidth with a Window Acknowledgement Size, as the spec asks.
 *
 * Hand-written, on the relay's own pure layers (handshake, chunk reader/writer, messages, AMF0), because no
 * maintained Node RTMP publishing client does RTMPS, exposes back-pressure (the socket's `writableLength`,
 * which the re-streaming pusher turns into drops) and reports failures with stable error codes; and an
 * FFmpeg child per destination costs ten times the CPU (reference/ffmpeg.md).
 *
 * Like ./server-conn.ts it is the only layer here that touches its socket. Server input is bounded by the
 * chunk reader's limits (small: a server sends commands, not media), every parse error is caught in the
 * socket callback and closes this one client with a code, and nothing is ever thrown out of a callback.
 * Every timer (connect, handshake, publish start, the flush after close) is owned and cleared on close.
 * The stream key is a secret: logs and errors carry the redacted URL, and server descriptions are scrubbed.
 */
import net from 'node:net';
import tls from 'node:tls';
import { FlvTagType, type MediaTag } from '../media/flv-tag.ts';
import { ErrorCodes, RelayError, toRelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type Amf0Encodable, type Amf0Object, type Amf0Value, encodeAmf0 } from './amf0.ts';
import type { RawMessage } from './chunk.ts';
import { ChunkReader, type ChunkReaderLimits } from './chunk-reader.ts';
import { ChunkWriter } from './chunk-writer.ts';
import { ClientHandshake } from './client-handshake.ts';
import { parseRtmpUrl, REDACTED_KEY, type RtmpUrl } from './client-url.ts';
import { buildClientC0C1 } from './handshake.ts';
import {
  CommandCsid,
  decodeMessage,
  encodeMessage,
  type Message,
  MessageType,
  UserControlEvent,
} from './messages.ts';

export const PublisherState = {
  Idle: 'idle',
  /** TCP (and TLS) connection under way. */
  Connecting: 'connecting',
  Handshake: 'handshake',
  /** `connect` sent; waiting for its `_result`. */
  Connect: 'connect',
  /** `createStream` sent; waiting for the stream id. */
  CreateStream: 'create-stream',
  /** `publish` sent; waiting for NetStream.Publish.Start. */
  Publish: 'publish',
  Publishing: 'publishing',
  Closed: 'closed',
} as const;
export type PublisherStateName = (typeof PublisherState)[keyof typeof PublisherState];

export interface RtmpPublisherOptions {
  /** `rtmp[s]://host[:port]/app[/instance]/streamKey[?query]`, or one already parsed. */
  url: string | RtmpUrl;
  log: Logger;
  /** Trusted CAs for RTMPS instead of Node's bundle (tests, private ingests). Certificates are always verified. */
  ca?: tls.SecureContextOptions['ca'];
  /** TCP (and TLS) connection, DNS included (default 10 s). */
  connectTimeoutMs?: number;
  /** From connected to the server's S2 (default 10 s). */
  handshakeTimeoutMs?: number;
  /** From the handshake to NetStream.Publish.Start (default 10 s). */
  publishTimeoutMs?: number;
  /** Outgoing chunk size, announced once connected (default 4096, what FFmpeg and OBS use). */
  chunkSize?: number;
  /** Fail with RTMP_SLOW_PEER when this many bytes sit unsent in the socket (default 16 MiB). */
  maxWriteBuffer?: number;
  /** Limits on what the server may send (defaults: 1 MiB messages, 16 chunk streams, 2 MiB buffered). */
  limits?: Partial<ChunkReaderLimits>;
  /** `flashVer` in connect (default FFmpeg's publisher string). */
  flashVer?: string;
  /**
   * A Window Acknowledgement Size to announce once connected, so the server acknowledges every this many
   * bytes: `unacknowledgedBytes` then tells a network that stopped taking data (no FIN) long before the
   * kernel's send buffer fills. Unset: whatever the server's Set Peer Bandwidth asks.
   */
  ackWindow?: number;
}

export interface PublisherStarted {
  /** The message stream id the server gave. */
  streamId: number;
  /** From start() to NetStream.Publish.Start. */
  elapsedMs: number;
}

/** `closed`: close() was called; `destroyed`: destroy() was called; `failed`: anything else (see `error`). */
export type PublisherCloseReason = 'closed' | 'destroyed' | 'failed';

export interface PublisherClosed {
  reason: PublisherCloseReason;
  /** Set when `reason` is `failed`: what went wrong, with a stable code. */
  error?: RelayError;
  /** Whether NetStream.Publish.Start had been received. */
  wasPublishing: boolean;
}

export type RtmpPublisherEvents = {
  /** NetStream.Publish.Start: send() now writes media. */
  started: [PublisherStarted];
  /** Emitted once; the publisher is finished and every timer released. */
  closed: [PublisherClosed];
};

export const DEFAULT_PUBLISHER_TIMEOUT_MS = 10_000;
export const DEFAULT_PUBLISHER_CHUNK_SIZE = 4096;
export const DEFAULT_PUBLISHER_MAX_WRITE_BUFFER = 16 * 1024 * 1024;
const DEFAULT_LIMITS: ChunkReaderLimits = {
  maxMessageSize: 1024 * 1024,
  maxChunkStreams: 16,
  maxBufferedBytes: 2 * 1024 * 1024,
};
const FLASH_VER = 'FMLE/3.0 (compatible; FMSc/1.0)';
/** How long a closing socket may take to flush FCUnpublish/deleteStream before it is destroyed. */
const CLOSE_FLUSH_MS = 2000;
const MAX_DESCRIPTION = 200;

/** Chunk streams, as FFmpeg and the relay's own server use them. */
const Csid = { control: 2, command: CommandCsid, audio: 4, data: 5, video: 6, publish: 8 } as const;
const SET_DATA_FRAME = encodeAmf0('@setDataFrame');

type Command = Extract<Message, { kind: 'command' }>;

/** onStatus codes that refuse a publish, and what they mean to us. */
function refusalCode(code: string): (typeof ErrorCodes)[keyof typeof ErrorCodes] {
  if (code === 'NetStream.Publish.BadName') return ErrorCodes.RTMP_CLIENT_BAD_NAME;
  if (code === 'NetStream.Publish.Unauthorized' || code === 'NetStream.Publish.Denied') {
    return ErrorCodes.RTMP_CLIENT_UNAUTHORIZED;
  }
  return ErrorCodes.RTMP_CLIENT_REJECTED;
}

function infoObject(value: Amf0Value | undefined): Amf0Object | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date)
    ? value
    : null;
}

function text(value: Amf0Value | undefined): string {
  return typeof value === 'string' ? value : '';
}

/** Whether a script tag body already starts with the AMF0 string "@setDataFrame". */
function hasSetDataFrame(data: Buffer): boolean {
  return (
    data.length >= SET_DATA_FRAME.length && data.subarray(0, SET_DATA_FRAME.length).equals(SET_DATA_FRAME)
  );
}

export class RtmpPublisher extends TypedEmitter<RtmpPublisherEvents> {
  readonly url: RtmpUrl;
  readonly #log: Logger;
  readonly #options: RtmpPublisherOptions;
  readonly #reader: ChunkReader;
  readonly #writer = new ChunkWriter();
  readonly #handshake = new ClientHandshake();
  readonly #chunkSize: number;
  readonly #maxWriteBuffer: number;
  #state: PublisherStateName = PublisherState.Idle;
  #socket: net.Socket | null = null;
  #timer: NodeJS.Timeout | null = null;
  #flushTimer: NodeJS.Timeout | null = null;
  #tlsPhase = false;
  #startedAt = 0;
  #streamId = 0;
  #nextTxn = 1;
  /** Transactions whose answer matters; the others (releaseStream, FCPublish) are not awaited. */
  readonly #pending = new Map<number, 'connect' | 'createStream'>();
  #bytesIn = 0;
  #bytesOut = 0;
  #ackWindow = 0;
  #lastAck = 0;
  /** The server's last Acknowledgement: bytes of ours it received (32-bit, wraps). */
  #ackedOut = 0;
  #windowSent = 0;

  constructor(options: RtmpPublisherOptions) {
    super();
    if (typeof options.url === 'string') {
      const parsed = parseRtmpUrl(options.url);
      if (!parsed.ok) throw new RelayError(ErrorCodes.RTMP_CLIENT_URL_INVALID, parsed.reason);
      this.url = parsed.url;
    } else {
      this.url = options.url;
    }
    this.#options = options;
    this.#log = options.log.child({ component: 'rtmp-client', url: this.url.redacted });
    this.#reader = new ChunkReader({ ...DEFAULT_LIMITS, ...options.limits });
    this.#chunkSize = options.chunkSize ?? DEFAULT_PUBLISHER_CHUNK_SIZE;
    if (!Number.isInteger(this.#chunkSize) || this.#chunkSize < 128 || this.#chunkSize > 0xffffff) {
      throw new RangeError(`chunk size ${this.#chunkSize}`);
    }
    this.#maxWriteBuffer = options.maxWriteBuffer ?? DEFAULT_PUBLISHER_MAX_WRITE_BUFFER;
  }

  protected override onListenerError(event: string, err: unknown): void {
    this.#log.error({ err, event }, 'an RTMP publisher event listener threw');
  }

  get state(): PublisherStateName {
    return this.#state;
  }

  /** Bytes written to the socket and not yet handed to the kernel: the back-pressure gauge. */
  get writableLength(): number {
    return this.#socket?.writableLength ?? 0;
  }

  /** Bytes sent that the server has not acknowledged yet (meaningful with `ackWindow`). */
  get unacknowledgedBytes(): number {
    return (this.#bytesOut - this.#ackedOut + 2 ** 32) % 2 ** 32;
  }

  /** Every byte written to the socket, handshake and commands included. */
  get bytesSent(): number {
    return this.#bytesOut;
  }

  get bytesReceived(): number {
    return this.#bytesIn;
  }

  /** Opens the connection and publishes; watch `started` and `closed`. Only the first call does anything. */
  start(): void {
    if (this.#state !== PublisherState.Idle) return;
    this.#state = PublisherState.Connecting;
    this.#startedAt = performance.now();
    const { host, port, scheme } = this.url;
    this.#arm(this.#options.connectTimeoutMs, 'connecting');
    let socket: net.Socket;
    if (scheme === 'rtmps') {
      socket = tls.connect({
        host,
        port,
        servername: net.isIP(host) === 0 ? host : undefined,
        ca: this.#options.ca,
      });
      socket.once('connect', () => {
        this.#tlsPhase = true;
      });
      socket.once('secureConnect', this.#onConnected);
    } else {
      socket = net.connect({ host, port });
      socket.once('connect', this.#onConnected);
    }
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', this.#onData);
    socket.on('error', this.#onSocketError);
    socket.on('end', () =>
      this.#fail(new RelayError(ErrorCodes.RTMP_CLIENT_DISCONNECTED, 'the server closed the connection')),
    );
    socket.on('close', () => {
      if (this.#flushTimer) clearTimeout(this.#flushTimer);
      this.#flushTimer = null;
      this.#fail(new RelayError(ErrorCodes.RTMP_CLIENT_DISCONNECTED, 'the connection closed'));
    });
  }

  /**
   * Writes one FLV tag as an RTMP message (script data as `@setDataFrame onMetaData`), at `timestamp`
   * (default: the tag's own). Returns the bytes written, 0 when not publishing. Never throws for a bad tag:
   * it is skipped.
   */
  send(tag: MediaTag, at: number = tag.timestamp): number {
    if (this.#state !== PublisherState.Publishing) return 0;
    let raw: RawMessage;
    const timestamp = at >>> 0;
    if (tag.type === FlvTagType.Video) {
      raw = {
        csid: Csid.video,
        type: MessageType.Video,
        streamId: this.#streamId,
        timestamp,
        payload: tag.data,
      };
    } else if (tag.type === FlvTagType.Audio) {
      raw = {
        csid: Csid.audio,
        type: MessageType.Audio,
        streamId: this.#streamId,
        timestamp,
        payload: tag.data,
      };
    } else if (tag.type === FlvTagType.Script) {
      const payload = hasSetDataFrame(tag.data) ? tag.data : Buffer.concat([SET_DATA_FRAME, tag.data]);
      raw = { csid: Csid.data, type: MessageType.DataAmf0, streamId: this.#streamId, timestamp, payload };
    } else {
      return 0;
    }
    if (raw.payload.length > 0xffffff) return 0; // cannot be one RTMP message; never produced by a publish
    const bytes = this.#writer.write(raw);
    this.#write(bytes);
    return bytes.length;
  }

  /**
   * Ends the publish: FCUnpublish + deleteStream when publishing, then a TCP close (the socket gets a
   * moment to flush, then is destroyed). Emits `closed` with reason `closed`. Idempotent.
   */
  close(): void {
    if (this.#state === PublisherState.Closed) return;
    const socket = this.#socket;
    const graceful = this.#state === PublisherState.Publishing && socket !== null && !socket.destroyed;
    if (graceful) {
      this.#command('FCUnpublish', [null, this.url.streamName]);
      this.#command('deleteStream', [null, this.#streamId]);
    }
    this.#finish({ reason: 'closed', wasPublishing: this.#state === PublisherState.Publishing }, graceful);
  }

  /** Drops the connection at once, with no unpublish. Emits `closed` with reason `destroyed`. Idempotent. */
  destroy(): void {
    if (this.#state === PublisherState.Closed) return;
    this.#finish({ reason: 'destroyed', wasPublishing: this.#state === PublisherState.Publishing }, false);
  }

  // ------------------------------------------------------------------------------------------ lifecycle

  #arm(ms: number | undefined, what: string): void {
    if (this.#timer) clearTimeout(this.#timer);
    const limit = ms ?? DEFAULT_PUBLISHER_TIMEOUT_MS;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#fail(new RelayError(ErrorCodes.RTMP_CLIENT_TIMEOUT, `timed out after ${limit} ms while ${what}`));
    }, limit);
  }

  #fail(error: RelayError): void {
    if (this.#state === PublisherState.Closed) return;
    this.#finish(
      { reason: 'failed', error, wasPublishing: this.#state === PublisherState.Publishing },
      false,
    );
  }

  #finish(closed: PublisherClosed, graceful: boolean): void {
    const from = this.#state;
    this.#state = PublisherState.Closed;
    this.#reader.stop();
    this.#pending.clear();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const socket = this.#socket;
    if (socket && !socket.destroyed) {
      if (graceful) {
        socket.end();
        // The server may never read: destroy anyway after a moment. Cleared on the socket's close.
        this.#flushTimer = setTimeout(() => socket.destroy(), CLOSE_FLUSH_MS);
      } else {
        socket.destroy();
      }
    }
    if (closed.error) {
      this.#log.warn(
        { code: closed.error.code, state: from, bytesSent: this.#bytesOut },
        `publisher failed: ${closed.error.message}`,
      );
    } else {
      this.#log.info({ reason: closed.reason, state: from, bytesSent: this.#bytesOut }, 'publisher closed');
    }
    this.safeEmit('closed', closed);
  }

  readonly #onSocketError = (err: NodeJS.ErrnoException): void => {
    if (this.#state === PublisherState.Closed) return;
    const detail = err.code ? `${err.code}: ${err.message}` : err.message;
    if (this.#state === PublisherState.Connecting) {
      const code = this.#tlsPhase ? ErrorCodes.RTMP_CLIENT_TLS_FAILED : ErrorCodes.RTMP_CLIENT_CONNECT_FAILED;
      const what = this.#tlsPhase ? 'TLS handshake failed' : 'cannot connect';
      this.#fail(new RelayError(code, `${what} (${detail})`, { cause: err }));
      return;
    }
    this.#fail(new RelayError(ErrorCodes.RTMP_SOCKET_ERROR, `socket error (${detail})`, { cause: err }));
  };

  readonly #onConnected = (): void => {
    if (this.#state !== PublisherState.Connecting) return;
    this.#tlsPhase = false;
    this.#socket!.setKeepAlive(true, 10_000);
    this.#state = PublisherState.Handshake;
    this.#arm(this.#options.handshakeTimeoutMs, 'waiting for the RTMP handshake');
    this.#write(buildClientC0C1());
  };

  readonly #onData = (data: Buffer): void => {
    if (this.#state === PublisherState.Closed || this.#state === PublisherState.Connecting) return;
    this.#bytesIn += data.length;
    try {
      let rest = data;
      if (this.#state === PublisherState.Handshake) {
        const step = this.#handshake.push(data);
        if (!step.done) return;
        rest = step.rest;
        this.#onHandshake(step.c2);
      }
      if (rest.length > 0) this.#reader.push(rest, this.#onMessage);
      this.#maybeAcknowledge();
    } catch (err) {
      this.#fail(toRelayError(err, ErrorCodes.RTMP_MESSAGE_MALFORMED));
    }
  };

  #onHandshake(c2: Buffer): void {
    this.#write(c2);
    this.#state = PublisherState.Connect;
    this.#arm(this.#options.publishTimeoutMs, 'waiting for the publish to start');
    const { app, tcUrl } = this.url;
    const connect = this.#command('connect', [
      { app, type: 'nonprivate', flashVer: this.#options.flashVer ?? FLASH_VER, tcUrl },
    ]);
    this.#pending.set(connect, 'connect');
  }

  #maybeAcknowledge(): void {
    if (this.#ackWindow <= 0 || this.#state === PublisherState.Closed) return;
    if (this.#bytesIn - this.#lastAck >= this.#ackWindow) {
      this.#lastAck = this.#bytesIn;
      this.#send({ kind: 'acknowledgement', sequence: this.#bytesIn >>> 0 });
    }
  }

  // ------------------------------------------------------------------------------------------- messages

  readonly #onMessage = (raw: RawMessage): void => {
    const message = decodeMessage(raw);
    switch (message.kind) {
      case 'set-chunk-size':
        this.#reader.setChunkSize(message.size);
        return;
      case 'abort':
        this.#reader.abort(message.csid);
        return;
      case 'window-ack-size':
        this.#ackWindow = message.size;
        return;
      case 'set-peer-bandwidth':
        // Spec §5.4.5: answer with our window when it differs from the last one we sent.
        if (message.size > 0 && message.size !== this.#windowSent) {
          this.#windowSent = message.size;
          this.#send({ kind: 'window-ack-size', size: message.size });
        }
        return;
      case 'user-control':
        if (message.event === UserControlEvent.PingRequest) {
          this.#send({ kind: 'user-control', event: UserControlEvent.PingResponse, value: message.value });
        }
        return;
      case 'command':
        return this.#onCommand(message);
      case 'acknowledgement':
        this.#ackedOut = message.sequence;
        return;
      default:
        return; // media or data from a server: nothing a publisher needs
    }
  };

  #onCommand(cmd: Command): void {
    switch (cmd.name) {
      case '_result':
      case '_error':
        return this.#onResult(cmd);
      case 'onStatus':
        return this.#onStatus(cmd);
      case 'close':
        throw new RelayError(ErrorCodes.RTMP_CLIENT_DISCONNECTED, 'the server sent "close"');
      default:
        // onBWDone, onFCPublish, _checkbw and friends: nothing to answer for a publish.
        this.#log.debug({ command: cmd.name.slice(0, 64) }, 'ignored server command');
        return;
    }
  }

  #onResult(cmd: Command): void {
    const purpose = this.#pending.get(cmd.transactionId);
    if (purpose === undefined) return; // releaseStream / FCPublish answers: FFmpeg ignores their errors too
    this.#pending.delete(cmd.transactionId);
    const info = infoObject(cmd.args[1]);
    if (cmd.name === '_error' || text(info?.level) === 'error') {
      const code = text(info?.code) || cmd.name;
      throw new RelayError(
        ErrorCodes.RTMP_CLIENT_REJECTED,
        `the server refused ${purpose}: ${code}${this.#describe(info)}`,
      );
    }
    if (purpose === 'connect') {
      if (this.#state !== PublisherState.Connect) return;
      this.#state = PublisherState.CreateStream;
      this.#send({ kind: 'set-chunk-size', size: this.#chunkSize });
      this.#writer.setChunkSize(this.#chunkSize);
      if (this.#options.ackWindow) {
        this.#windowSent = this.#options.ackWindow;
        this.#send({ kind: 'window-ack-size', size: this.#options.ackWindow });
      }
      const name = this.url.streamName;
      this.#command('releaseStream', [null, name]);
      this.#command('FCPublish', [null, name]);
      this.#pending.set(this.#command('createStream', [null]), 'createStream');
      return;
    }
    // createStream
    if (this.#state !== PublisherState.CreateStream) return;
    const id = cmd.args[1];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffffffff) {
      throw new RelayError(ErrorCodes.RTMP_MESSAGE_MALFORMED, 'createStream answered without a stream id');
    }
    this.#streamId = id;
    this.#state = PublisherState.Publish;
    this.#command('publish', [null, this.url.streamName, 'live'], id, Csid.publish);
  }

  #onStatus(cmd: Command): void {
    const info = infoObject(cmd.args[1]);
    const code = text(info?.code);
    const level = text(info?.level);
    if (this.#state === PublisherState.Publish && code === 'NetStream.Publish.Start') {
      this.#state = PublisherState.Publishing;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      const started: PublisherStarted = {
        streamId: this.#streamId,
        elapsedMs: Math.round(performance.now() - this.#startedAt),
      };
      this.#log.info(started, 'publishing');
      this.safeEmit('started', started);
      return;
    }
    if (level === 'error' || /^NetStream\.Publish\.(BadName|Unauthorized|Denied|Failed)$/.test(code)) {
      const publishing = this.#state === PublisherState.Publishing;
      throw new RelayError(
        refusalCode(code),
        `${publishing ? 'the server stopped the publish' : 'the server refused the publish'}: ` +
          `${this.#scrub(code) || 'no code'}${this.#describe(info)}`,
      );
    }
    this.#log.debug({ code: this.#scrub(code).slice(0, 100) }, 'status from the server');
  }

  /** ": description", scrubbed of the stream key and bounded, or "". */
  #describe(info: Amf0Object | null): string {
    const description = this.#scrub(text(info?.description)).slice(0, MAX_DESCRIPTION);
    return description ? ` (${description})` : '';
  }

  /** Removes the stream key (with and without its query) from text a server sent back. */
  #scrub(value: string): string {
    const name = this.url.streamName;
    const q = name.indexOf('?');
    let out = value.split(name).join(REDACTED_KEY);
    if (q > 0) out = out.split(name.slice(0, q)).join(REDACTED_KEY);
    return out;
  }

  // -------------------------------------------------------------------------------------------- writing

  /** Sends a command on the command chunk stream; returns its transaction id. */
  #command(name: string, args: Amf0Encodable[], streamId = 0, csid: number = Csid.command): number {
    const txn = this.#nextTxn++;
    const raw = encodeMessage({
      kind: 'command',
      streamId,
      name,
      transactionId: txn,
      args: args as Amf0Value[],
    });
    this.#write(this.#writer.write({ ...raw, csid }));
    return txn;
  }

  #send(message: Message): void {
    this.#write(this.#writer.write(encodeMessage(message)));
  }

  #write(data: Buffer): void {
    const socket = this.#socket;
    if (this.#state === PublisherState.Closed || socket === null || socket.destroyed) return;
    socket.write(data);
    this.#bytesOut += data.length;
    if (socket.writableLength > this.#maxWriteBuffer) {
      this.#fail(
        new RelayError(ErrorCodes.RTMP_SLOW_PEER, `the server left ${socket.writableLength} bytes unsent`),
      );
    }
  }
}
