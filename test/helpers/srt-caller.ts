/**
 * A minimal SRT caller written against our own codec, for tests that need control no real client gives:
 * hand-made handshakes (HSv5 induction → conclusion with a stream id), data packets with chosen sequence
 * numbers, raw datagrams from the connected address (fuzzing the connection), a shutdown, or silence.
 */
import dgram from 'node:dgram';
import {
  ControlType,
  decodeHandshake,
  decodePacket,
  encodeHandshake,
  encodePacket,
  encodePeerIp,
  type Handshake,
  HandshakeType,
  HsExtFlag,
  SrtFlag,
} from '../../src/srt/packet.ts';

export type ConnectResult = { ok: true } | { ok: false; type: number };

let nextId = 0x1000;

export class TestCaller {
  readonly socketId = nextId++;
  peerSocketId = 0;
  seq = 1000;
  /** The cookie the listener gave this caller's address at its last induction. */
  cookie = 0;
  #message = 0;
  readonly #socket = dgram.createSocket('udp4');
  readonly #start = Date.now();
  #port = 0;

  async bind(): Promise<this> {
    await new Promise<void>((resolve) => this.#socket.bind(0, '127.0.0.1', () => resolve()));
    return this;
  }

  get port(): number {
    return this.#socket.address().port;
  }

  #ts(): number {
    return ((Date.now() - this.#start) * 1000) >>> 0;
  }

  handshakePacket(hs: Handshake, dest = 0): Buffer {
    return encodePacket({
      kind: 'control',
      type: ControlType.Handshake,
      subtype: 0,
      info: 0,
      timestamp: this.#ts(),
      destSocketId: dest,
      cif: encodeHandshake(hs),
    });
  }

  /** The next handshake answer (or null after `timeoutMs`). */
  #answer(timeoutMs: number): Promise<Handshake | null> {
    return new Promise((resolve) => {
      const onMessage = (msg: Buffer) => {
        try {
          const p = decodePacket(msg);
          if (p.kind !== 'control' || p.type !== ControlType.Handshake) return;
          done(decodeHandshake(p.cif));
        } catch {
          // not a handshake answer: keep waiting
        }
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      const done = (hs: Handshake | null) => {
        clearTimeout(timer);
        this.#socket.off('message', onMessage);
        resolve(hs);
      };
      this.#socket.on('message', onMessage);
    });
  }

  induction(): Handshake {
    return {
      version: 4,
      encryption: 0,
      extension: 2,
      initialSeq: this.seq,
      mtu: 1500,
      flowWindow: 8192,
      type: HandshakeType.Induction,
      socketId: this.socketId,
      cookie: 0,
      peerIp: encodePeerIp('127.0.0.1'),
    };
  }

  conclusion(cookie: number, streamId: string | undefined): Handshake {
    return {
      ...this.induction(),
      version: 5,
      extension: HsExtFlag.HsReq | HsExtFlag.Config,
      type: HandshakeType.Conclusion,
      cookie,
      hsReq: {
        srtVersion: 0x010500,
        flags:
          SrtFlag.TsbpdSnd |
          SrtFlag.TsbpdRcv |
          SrtFlag.Crypt |
          SrtFlag.TlPktDrop |
          SrtFlag.PeriodicNak |
          SrtFlag.RexmitFlg,
        recvDelay: 120,
        sendDelay: 120,
      },
      ...(streamId === undefined ? {} : { streamId }),
    };
  }

  /** Induction then conclusion; the answer says accepted or the rejection's handshake type. */
  async connect(port: number, streamId: string, timeoutMs = 10_000): Promise<ConnectResult> {
    this.#port = port;
    const induction = this.#answer(timeoutMs);
    this.sendRaw(this.handshakePacket(this.induction()));
    const first = await induction;
    if (!first) throw new Error('no induction answer');
    this.cookie = first.cookie;
    const conclusion = this.#answer(timeoutMs);
    this.sendRaw(this.handshakePacket(this.conclusion(first.cookie, streamId)));
    const second = await conclusion;
    if (!second) throw new Error('no conclusion answer');
    if (second.type !== HandshakeType.Conclusion) return { ok: false, type: second.type };
    this.peerSocketId = second.socketId;
    return { ok: true };
  }

  /** One data packet (a whole message) with the next sequence number. */
  sendData(payload: Buffer, seq = this.seq++): void {
    this.sendRaw(
      encodePacket({
        kind: 'data',
        seq,
        position: 3,
        inOrder: true,
        key: 0,
        retransmitted: false,
        messageNumber: this.#message++ & 0x3ffffff || 1,
        timestamp: this.#ts(),
        destSocketId: this.peerSocketId,
        payload,
      }),
    );
  }

  shutdown(): void {
    this.sendRaw(
      encodePacket({
        kind: 'control',
        type: ControlType.Shutdown,
        subtype: 0,
        info: 0,
        timestamp: this.#ts(),
        destSocketId: this.peerSocketId,
        cif: Buffer.alloc(4),
      }),
    );
  }

  sendRaw(datagram: Buffer, port = this.#port): void {
    this.#socket.send(datagram, port, '127.0.0.1');
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}
