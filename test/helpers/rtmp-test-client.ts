/**
 * A scripted RTMP publisher over real TCP, built from the relay's own pure layers, for protocol tests
 * that real clients cannot script (pipelined media before Publish.Start, hostile commands, takeovers).
 */
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import { type Amf0Encodable, type Amf0Object, type Amf0Value, encodeAmf0 } from '../../src/rtmp/amf0.ts';
import { ChunkReader } from '../../src/rtmp/chunk-reader.ts';
import { ChunkWriter } from '../../src/rtmp/chunk-writer.ts';
import { buildClientC0C1, HANDSHAKE_SIZE } from '../../src/rtmp/handshake.ts';
import { decodeMessage, type Message, MessageType } from '../../src/rtmp/messages.ts';

export const AVC_CONFIG = Buffer.from('1700000000014d401fffe1000a674d401f965402c03d90010004688e3880', 'hex');
export const AAC_CONFIG = Buffer.from('af001210', 'hex');
export const AVC_KEYFRAME = Buffer.concat([Buffer.from('1701000000', 'hex'), Buffer.alloc(400, 0x65)]);
export const AVC_FRAME = Buffer.concat([Buffer.from('2701000000', 'hex'), Buffer.alloc(100, 0x41)]);

export class TestClient extends EventEmitter {
  readonly socket: net.Socket;
  readonly writer = new ChunkWriter();
  readonly received: Message[] = [];
  readonly closed: Promise<void>;
  #reader = new ChunkReader();
  #handshakeLeft = 1 + 2 * HANDSHAKE_SIZE;

  private constructor(socket: net.Socket) {
    super();
    this.socket = socket;
    // Not events.once: it rejects on 'error', and a reset nobody awaits here would be an unhandled
    // rejection (read ECONNRESET) charged to whatever test runs then. 'close' always follows an error.
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {}); // resets are expected in these tests; 'close' follows
    socket.on('data', (data: Buffer) => this.#onData(data));
  }

  /** Opens TCP and, unless told not to, completes the handshake. */
  static async open(port: number, options: { handshake?: boolean } = {}): Promise<TestClient> {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const client = new TestClient(socket);
    if (options.handshake !== false) {
      socket.write(buildClientC0C1());
      await client.waitFor(() => client.#handshakeLeft === 0);
      socket.write(Buffer.alloc(HANDSHAKE_SIZE)); // C2 (content ignored by the server)
    }
    return client;
  }

  #onData(data: Buffer): void {
    if (this.#handshakeLeft > 0) {
      const n = Math.min(this.#handshakeLeft, data.length);
      this.#handshakeLeft -= n;
      data = data.subarray(n);
    }
    if (data.length > 0) {
      this.#reader.push(data, (raw) => {
        const m = decodeMessage(raw);
        if (m.kind === 'set-chunk-size') this.#reader.setChunkSize(m.size);
        this.received.push(m);
      });
    }
    this.emit('progress');
  }

  /** Resolves when `predicate` holds, checked on every read; rejects when the socket closes first. */
  waitFor<T>(predicate: () => T | undefined | false): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const v = predicate();
        if (v) {
          cleanup();
          resolve(v);
          return true;
        }
        return false;
      };
      const onClose = (): void => {
        if (!check()) {
          cleanup();
          reject(new Error('connection closed while waiting'));
        }
      };
      const cleanup = (): void => {
        this.off('progress', check);
        this.socket.off('close', onClose);
      };
      if (check()) return;
      this.on('progress', check);
      this.socket.once('close', onClose);
    });
  }

  command(name: string, transactionId: number, args: Amf0Encodable[], streamId = 0, csid = 3): void {
    this.write({
      csid,
      type: MessageType.CommandAmf0,
      streamId,
      timestamp: 0,
      payload: encodeAmf0(name, transactionId, ...args),
    });
  }

  write(raw: { csid: number; type: number; streamId: number; timestamp: number; payload: Buffer }): void {
    if (!this.socket.destroyed) this.socket.write(this.writer.write(raw));
  }

  video(timestamp: number, data: Buffer, streamId = 1): void {
    this.write({ csid: 6, type: MessageType.Video, streamId, timestamp, payload: data });
  }

  audio(timestamp: number, data: Buffer, streamId = 1): void {
    this.write({ csid: 4, type: MessageType.Audio, streamId, timestamp, payload: data });
  }

  /** connect + createStream, the way ffmpeg does it; resolves when both answers arrived. */
  async connectAndCreate(app = 'live/user1', tcUrl = `rtmp://127.0.0.1/${app}`): Promise<void> {
    this.command('connect', 1, [{ app, tcUrl, flashVer: 'FMLE/3.0', type: 'nonprivate' }]);
    this.command('releaseStream', 2, [null, 'x']);
    this.command('FCPublish', 3, [null, 'x']);
    this.command('createStream', 4, [null]);
    await this.waitFor(() => this.result(4));
  }

  /** Sends publish; resolves with the first onStatus info object. */
  async publish(name: string, streamId = 1): Promise<Amf0Object> {
    this.command('publish', 5, [null, name, 'live'], streamId, 8);
    return this.waitFor(() => this.status());
  }

  result(transactionId: number): Extract<Message, { kind: 'command' }> | undefined {
    return this.received.find(
      (m): m is Extract<Message, { kind: 'command' }> =>
        m.kind === 'command' && m.name === '_result' && m.transactionId === transactionId,
    );
  }

  status(): Amf0Object | undefined {
    const m = this.received.find((r) => r.kind === 'command' && r.name === 'onStatus');
    return m?.kind === 'command' ? (m.args[1] as Amf0Object) : undefined;
  }

  commands(): { name: string; transactionId: number; args: Amf0Value[] }[] {
    return this.received.filter((m) => m.kind === 'command') as {
      name: string;
      transactionId: number;
      args: Amf0Value[];
    }[];
  }

  close(): void {
    this.socket.destroy();
  }
}
