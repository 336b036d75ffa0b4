/**
 * One accepted SRT caller (gosrt `connection.go`): its timers (ACK and TSBPD delivery every 10 ms, periodic
 * NAK, keep-alive, peer idle timeout), RTT from ACK/ACKACK, decryption and re-keying, shutdown, and its
 * statistics. A hole in the sequence holds delivery for up to one more latency before it is given up
 * (./receiver.ts, `holeGraceUs`): this feeds a demuxer, not a player. Packets come in from the listener (which owns the UDP socket and checked the peer's address);
 * everything this connection sends goes out through the listener's `send`. What the receiver releases goes
 * to the publish's source. `close()` is idempotent and releases the one timer.
 */
import type { EndReason } from '../contracts/publish.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { SrtDecryptor } from './crypto.ts';
import {
  ControlType,
  type ControlTypeId,
  decodeKeyMaterial,
  encodeAck,
  encodeKmState,
  encodeLossList,
  encodePacket,
  HsExtType,
  KeyFlag,
  KmState,
  type Packet,
} from './packet.ts';
import { Receiver } from './receiver.ts';
import type { SrtSource } from './source.ts';

/** libsrt's SYN interval: delivery, NAK and ACK checks run on it. */
const TICK_MS = 10;
const KEEPALIVE_US = 1_000_000;
/**
 * Full ACKs at most this often (libsrt sends one every 10 ms): each costs a datagram out and an ACKACK in,
 * which was half of the CPU per stream; a live sender with a latency's worth of buffer does not need more.
 */
const ACK_INTERVAL_US = 20_000;
const MIN_NAK_INTERVAL_US = 20_000;
/** ACK numbers remembered for RTT (an ACKACK for an older one is ignored). */
const MAX_ACKS_IN_FLIGHT = 256;

export interface SrtConnectionOptions {
  id: number;
  socketId: number;
  peerSocketId: number;
  remoteAddress: string;
  remotePort: number;
  initialSeq: number;
  latencyMs: number;
  receiveBufferPackets: number;
  peerIdleTimeoutMs: number;
  decryptor: SrtDecryptor | null;
  /** The conclusion response, sent again when the caller repeats its conclusion. */
  conclusion: Buffer;
  source: SrtSource;
  send: (datagram: Buffer) => void;
  log: Logger;
  /** µs, monotonic. */
  now?: () => number;
}

export interface SrtConnectionStats {
  rttMs: number;
  rttVarMs: number;
  latencyMs: number;
  packetsReceived: number;
  bytesReceived: number;
  packetsLost: number;
  packetsRetransmitted: number;
  packetsRecovered: number;
  packetsDropped: number;
  packetsBelated: number;
  packetsOverflow: number;
  packetsUndecryptable: number;
  /** New keys taken from the caller's KMREQs after the handshake (even/odd switches). */
  keyRefreshes: number;
  acksSent: number;
  naksSent: number;
  receiveBufferPackets: number;
  receiveBufferCapacity: number;
}

export type SrtConnectionEvents = {
  /** Private: tells the listener to forget this connection. */
  '@close': [EndReason];
};

function monotonicUs(): number {
  return performance.now() * 1000; // monotonic; cheaper than hrtime.bigint() on every packet
}

export class SrtConnection extends TypedEmitter<SrtConnectionEvents> {
  readonly id: number;
  readonly socketId: number;
  readonly peerSocketId: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly source: SrtSource;
  readonly #receiver: Receiver;
  readonly #decryptor: SrtDecryptor | null;
  readonly #send: (datagram: Buffer) => void;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #start: number;
  readonly #latencyMs: number;
  readonly #idleUs: number;
  readonly #conclusion: Buffer;
  readonly #timer: NodeJS.Timeout;
  #lastHeard: number;
  #lastSent: number;
  #lastAckSeq = -1;
  #lastAckAt = 0;
  #ackNumber = 0;
  readonly #acksInFlight = new Map<number, number>();
  #lastNakCheck = 0;
  #rttUs = 100_000;
  #rttVarUs = 50_000;
  #rttMeasured = false;
  #acksSent = 0;
  #naksSent = 0;
  #undecryptable = 0;
  #keyRefreshes = 0;
  #closed: EndReason | null = null;

  constructor(o: SrtConnectionOptions) {
    super();
    this.id = o.id;
    this.socketId = o.socketId;
    this.peerSocketId = o.peerSocketId;
    this.remoteAddress = o.remoteAddress;
    this.remotePort = o.remotePort;
    this.source = o.source;
    this.#decryptor = o.decryptor;
    this.#send = o.send;
    this.#log = o.log;
    this.#now = o.now ?? monotonicUs;
    this.#start = this.#now();
    this.#lastHeard = this.#start;
    this.#lastSent = this.#start;
    this.#latencyMs = o.latencyMs;
    this.#idleUs = o.peerIdleTimeoutMs * 1000;
    this.#conclusion = o.conclusion;
    this.#receiver = new Receiver({
      initialSeq: o.initialSeq,
      latencyUs: o.latencyMs * 1000,
      holeGraceUs: o.latencyMs * 1000,
      capacity: o.receiveBufferPackets,
    });
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  get stats(): SrtConnectionStats {
    const r = this.#receiver.stats;
    return {
      rttMs: this.#rttUs / 1000,
      rttVarMs: this.#rttVarUs / 1000,
      latencyMs: this.#latencyMs,
      packetsReceived: r.packetsReceived,
      bytesReceived: r.bytesReceived,
      packetsLost: r.packetsLost,
      packetsRetransmitted: r.packetsRetransmitted,
      packetsRecovered: r.packetsRecovered,
      packetsDropped: r.packetsDropped,
      packetsBelated: r.packetsBelated,
      packetsOverflow: r.packetsOverflow,
      packetsUndecryptable: this.#undecryptable,
      keyRefreshes: this.#keyRefreshes,
      acksSent: this.#acksSent,
      naksSent: this.#naksSent,
      receiveBufferPackets: this.#receiver.buffered,
      receiveBufferCapacity: this.#receiver.capacity,
    };
  }

  /** The caller repeated its conclusion (our response was lost): answer it again. */
  resendConclusion(): void {
    if (!this.#closed) this.#sendRaw(this.#conclusion);
  }

  /** A packet for this connection (the listener checked its destination and source). */
  handle(packet: Packet): void {
    if (this.#closed) return;
    const now = this.#now();
    this.#lastHeard = now;
    if (packet.kind === 'data') {
      let payload = packet.payload;
      if (packet.key !== KeyFlag.None) {
        const plain = this.#decryptor?.decrypt(payload, packet.key, packet.seq) ?? null;
        if (!plain) {
          this.#undecryptable++;
          return;
        }
        payload = plain;
      }
      const lost = this.#receiver.push(packet.seq, packet.timestamp, payload, packet.retransmitted, now);
      if (lost) {
        // Sent twice: a lost NAK costs a whole NAK interval, and the loss is usually found late (the next
        // packet after a frame's burst can be a frame interval away) with little of the latency left.
        this.#nak(lost, now);
        this.#nak(lost, now);
      }
      return;
    }
    switch (packet.type) {
      case ControlType.AckAck: {
        const sent = this.#acksInFlight.get(packet.info);
        if (sent === undefined) return;
        this.#acksInFlight.delete(packet.info);
        const sample = now - sent;
        if (!this.#rttMeasured) {
          // The first sample replaces the 100 ms guess (as libsrt does): NAK timing depends on it at once.
          this.#rttMeasured = true;
          this.#rttUs = sample;
          this.#rttVarUs = sample / 2;
        } else {
          this.#rttVarUs = (3 * this.#rttVarUs + Math.abs(this.#rttUs - sample)) / 4;
          this.#rttUs = (7 * this.#rttUs + sample) / 8;
        }
        return;
      }
      case ControlType.Shutdown:
        this.close({ kind: 'unpublish', message: 'the caller shut down' }, { drain: true, notify: false });
        return;
      case ControlType.DropReq: {
        // The sender dropped these (too late on its side): stop asking for them.
        if (packet.cif.length >= 8) {
          this.#receiver.forget(
            packet.cif.readUInt32BE(0) & 0x7fffffff,
            packet.cif.readUInt32BE(4) & 0x7fffffff,
          );
        }
        return;
      }
      case ControlType.User:
        if (packet.subtype === HsExtType.KmReq) this.#rekey(packet.cif);
        return;
      default:
        return; // keepalive (it refreshed #lastHeard), ACK/NAK (we never send data), congestion warnings
    }
  }

  /** A KMREQ after the handshake announces the next key (even/odd switch): take it and answer KMRSP. */
  #rekey(cif: Buffer): void {
    let ok = false;
    try {
      ok = this.#decryptor?.update(decodeKeyMaterial(cif)) ?? false;
    } catch (err) {
      this.#log.debug({ err, conn: this.id }, 'unreadable KMREQ');
    }
    if (ok) this.#keyRefreshes++;
    const answer = ok ? cif : encodeKmState(this.#decryptor ? KmState.BadSecret : KmState.NoSecret);
    this.#control(ControlType.User, answer, { subtype: HsExtType.KmRsp });
  }

  #nak(ranges: readonly (readonly [number, number])[], _now: number): void {
    if (ranges.length === 0) return;
    this.#naksSent++;
    this.#control(ControlType.Nak, encodeLossList(ranges));
  }

  #tick(): void {
    if (this.#closed) return;
    const now = this.#now();
    if (now - this.#lastHeard > this.#idleUs) {
      this.close({
        kind: 'idle-timeout',
        code: ErrorCodes.SRT_IDLE_TIMEOUT,
        message: `nothing from the caller for ${Math.round(this.#idleUs / 1000)} ms`,
      });
      return;
    }
    for (const payload of this.#receiver.deliver(now)) this.source.feed(payload);
    if (this.#closed) return;
    const ackSeq = this.#receiver.ackSeq;
    if (ackSeq !== this.#lastAckSeq && now - this.#lastAckAt >= ACK_INTERVAL_US) this.#ack(ackSeq, now);
    const nakInterval = Math.max(MIN_NAK_INTERVAL_US, (this.#rttUs + 4 * this.#rttVarUs) / 2);
    if (now - this.#lastNakCheck >= nakInterval / 2) {
      this.#lastNakCheck = now;
      this.#nak(this.#receiver.periodicNak(now, nakInterval), now);
    }
    if (now - this.#lastSent > KEEPALIVE_US) this.#control(ControlType.Keepalive, Buffer.alloc(0));
  }

  #ack(ackSeq: number, now: number): void {
    this.#lastAckSeq = ackSeq;
    this.#lastAckAt = now;
    this.#ackNumber = (this.#ackNumber + 1) >>> 0 || 1;
    this.#acksInFlight.set(this.#ackNumber, now);
    if (this.#acksInFlight.size > MAX_ACKS_IN_FLIGHT) {
      const oldest = this.#acksInFlight.keys().next().value;
      if (oldest !== undefined) this.#acksInFlight.delete(oldest);
    }
    this.#acksSent++;
    const cif = encodeAck({
      lastAck: ackSeq,
      rtt: Math.round(this.#rttUs),
      rttVar: Math.round(this.#rttVarUs),
      bufferAvailable: Math.max(2, this.#receiver.capacity - this.#receiver.buffered),
      packetRate: 0,
      linkCapacity: 0,
      receiveRate: 0,
    });
    this.#control(ControlType.Ack, cif, { info: this.#ackNumber });
  }

  #control(type: ControlTypeId, cif: Buffer, o: { info?: number; subtype?: number } = {}): void {
    this.#sendRaw(
      encodePacket({
        kind: 'control',
        type,
        subtype: o.subtype ?? 0,
        info: o.info ?? 0,
        timestamp: (this.#now() - this.#start) >>> 0,
        destSocketId: this.peerSocketId,
        cif,
      }),
    );
  }

  #sendRaw(datagram: Buffer): void {
    this.#lastSent = this.#now();
    this.#send(datagram);
  }

  /**
   * Ends the connection and its publish. `drain` releases what the receive buffer holds first (the caller
   * said goodbye, nothing more will be retransmitted); `notify` sends our own shutdown. Idempotent.
   */
  close(reason: EndReason, options: { drain?: boolean; notify?: boolean } = {}): void {
    if (this.#closed) return;
    this.#closed = reason;
    clearInterval(this.#timer);
    if (options.drain) for (const payload of this.#receiver.drain()) this.source.feed(payload);
    if (options.notify ?? true) this.#control(ControlType.Shutdown, Buffer.alloc(4));
    this.source.end(reason);
    this.safeEmit('@close', reason);
  }
}
