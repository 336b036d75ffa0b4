/**
 * The SRT listener (gosrt `listen.go`, `conn_request.go`): one UDP socket for every stream, packets routed
 * to their connection by destination socket id (and refused unless they come from that connection's peer
 * address), the HSv5 handshake (induction answered statelessly with a SYN cookie; conclusion checked,
 * authorized and answered), encryption negotiation, limits (handshakes per second per IP and overall,
 * handshakes awaiting authorization, connections overall and per IP) and the live-publish registry with the
 * takeover rule of RTMP: the newest authorized publisher of a key takes over, the old one ends 'takeover'.
 *
 * Authorization runs before any media: the caller gets its conclusion response (and may send) only once the
 * hook allowed it; a refusal is a handshake rejection whose code says why (srt/stream-id.ts, `rejectFor`).
 * This is the only module of srt/ that touches the socket.
 */

import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import type { AuthDecision, AuthorizePublish, EndReason, PublishInfo } from '../contracts/publish.ts';
import { srtStreamPassphrase } from '../contracts/srt.ts';
import { type ErrorCode, ErrorCodes } from '../shared/errors.ts';
import { type Logger, redactUrl } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { SrtConnection, type SrtConnectionStats } from './conn.ts';
import { SynCookies } from './cookie.ts';
import { SrtDecryptor } from './crypto.ts';
import {
  ControlType,
  decodeHandshake,
  decodeKeyMaterial,
  decodePacket,
  encodeHandshake,
  encodePacket,
  encodePeerIp,
  type Handshake,
  HandshakeType,
  HEADER_SIZE,
  HsExtFlag,
  MAX_DATAGRAM,
  REJECT_BASE,
  RejectReason,
  type RejectReasonId,
  SRT_MAGIC,
  SrtFlag,
} from './packet.ts';
import { SrtSource } from './source.ts';
import { parseSrtStreamId, type SrtPublishTarget } from './stream-id.ts';

export interface SrtListenerOptions {
  log: Logger;
  authorize?: AuthorizePublish;
  /** The hook's time budget; libsrt callers give up on a handshake after 3 s. */
  authTimeoutMs?: number;
  /** TSBPD latency we ask for (the larger of ours and the caller's wins). */
  latencyMs?: number;
  /** The passphrase a stream key must be published with, or null for none (then encryption is refused). */
  passphrase?: (key: string) => string | null;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  handshakesPerSecond?: number;
  handshakesPerIpPerSecond?: number;
  /** Conclusions waiting for the authorization hook. */
  maxPendingHandshakes?: number;
  receiveBufferPackets?: number;
  peerIdleTimeoutMs?: number;
}

export const SRT_DEFAULTS = {
  authTimeoutMs: 2500,
  latencyMs: 120,
  maxConnections: 1000,
  maxConnectionsPerIp: 20,
  handshakesPerSecond: 500,
  handshakesPerIpPerSecond: 20,
  maxPendingHandshakes: 64,
  receiveBufferPackets: 8192,
  peerIdleTimeoutMs: 5000,
} as const;

export interface SrtTakeoverInfo {
  key: string;
  previous: PublishInfo;
  next: PublishInfo;
}

export type SrtListenerEvents = {
  /** An authorized publish: attach to the source's start/au/config/end. */
  publish: [SrtSource];
  takeover: [SrtTakeoverInfo];
  end: [SrtSource, EndReason];
};

export interface SrtListenerStats {
  datagrams: number;
  /** Datagrams that are not SRT, or not for anyone here. */
  ignored: number;
  inductions: number;
  conclusions: number;
  /** Handshakes over the per-IP or total rate, or with a bad cookie: dropped without an answer. */
  handshakesDropped: number;
  rejections: number;
  connectionsAccepted: number;
  connectionsOpen: number;
  publishes: number;
  takeovers: number;
  errors: Map<ErrorCode, number>;
}

/** The per-connection statistics a publish exposes (RTT, loss, retransmissions, drops, receive buffer). */
export type { SrtConnectionStats };

const SRT_VERSION = 0x010500;
const HSRSP_FLAGS =
  SrtFlag.TsbpdSnd |
  SrtFlag.TsbpdRcv |
  SrtFlag.Crypt |
  SrtFlag.TlPktDrop |
  SrtFlag.PeriodicNak |
  SrtFlag.RexmitFlg;
/** Distinct source addresses tracked per rate window; past it every newcomer counts as over the rate. */
const MAX_RATE_ENTRIES = 10_000;

interface Refusal {
  reject: RejectReasonId;
  code: ErrorCode;
  reason: string;
}

/**
 * The passphrase of each stream key from the configuration: per stream from SRT_PASSPHRASE_SECRET (the
 * cloud derives the same one for the URL it hands out), one fixed SRT_PASSPHRASE, or none (unencrypted).
 */
export function passphraseFromConfig(c: {
  passphraseSecret: string | undefined;
  passphrase: string | undefined;
}): (key: string) => string | null {
  const { passphraseSecret: secret, passphrase } = c;
  if (secret !== undefined) return (key) => srtStreamPassphrase(secret, key);
  if (passphrase !== undefined) return () => passphrase;
  return () => null;
}

/**
 * The rejection for an authorization refusal: a bad name is a bad request, a token for another relay is
 * forbidden, a draining relay is down (the cloud places the stream elsewhere), anything else about the
 * token is unauthorized. Matches the refusal texts of cloud/tokens.ts and relay/relay.ts.
 */
export function rejectFor(decision: Extract<AuthDecision, { allow: false }>): Refusal {
  if (decision.badName)
    return { reject: RejectReason.BadRequest, code: ErrorCodes.SRT_BAD_STREAM_ID, reason: decision.reason };
  if (/another relay/i.test(decision.reason)) {
    return { reject: RejectReason.Forbidden, code: ErrorCodes.SRT_FORBIDDEN, reason: decision.reason };
  }
  if (/draining|closing/i.test(decision.reason)) {
    return { reject: RejectReason.Down, code: ErrorCodes.SRT_UNAUTHORIZED, reason: decision.reason };
  }
  return { reject: RejectReason.Unauthorized, code: ErrorCodes.SRT_UNAUTHORIZED, reason: decision.reason };
}

export class SrtListener extends TypedEmitter<SrtListenerEvents> {
  readonly stats: SrtListenerStats = {
    datagrams: 0,
    ignored: 0,
    inductions: 0,
    conclusions: 0,
    handshakesDropped: 0,
    rejections: 0,
    connectionsAccepted: 0,
    connectionsOpen: 0,
    publishes: 0,
    takeovers: 0,
    errors: new Map(),
  };
  readonly #log: Logger;
  readonly #authorize: AuthorizePublish;
  readonly #passphrase: (key: string) => string | null;
  readonly #o: Required<Omit<SrtListenerOptions, 'log' | 'authorize' | 'passphrase'>>;
  readonly #cookies = new SynCookies();
  readonly #socket: dgram.Socket;
  /** Our socket id for handshake answers (callers do not use it). */
  readonly #listenerId = randomInt(1, 0x3fffffff);
  readonly #start = Date.now();
  /** Connections by our socket id. */
  readonly #conns = new Map<number, SrtConnection>();
  /** The same, by the caller's address and socket id (a repeated conclusion finds its answer). */
  readonly #byPeer = new Map<string, SrtConnection>();
  /** Conclusions waiting for the authorization hook, by the same peer key. */
  readonly #pending = new Set<string>();
  readonly #perIp = new Map<string, number>();
  /** The live publish of each key. */
  readonly #live = new Map<string, SrtConnection>();
  #rateWindow = 0;
  #rateTotal = 0;
  readonly #ratePerIp = new Map<string, number>();
  #nextPublishId = 1;
  #listening = false;
  #closed = false;

  constructor(options: SrtListenerOptions) {
    super();
    this.#log = options.log.child({ component: 'srt' });
    this.#authorize = options.authorize ?? (() => ({ allow: true }));
    this.#passphrase = options.passphrase ?? (() => null);
    this.#o = {
      authTimeoutMs: options.authTimeoutMs ?? SRT_DEFAULTS.authTimeoutMs,
      latencyMs: options.latencyMs ?? SRT_DEFAULTS.latencyMs,
      maxConnections: options.maxConnections ?? SRT_DEFAULTS.maxConnections,
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? SRT_DEFAULTS.maxConnectionsPerIp,
      handshakesPerSecond: options.handshakesPerSecond ?? SRT_DEFAULTS.handshakesPerSecond,
      handshakesPerIpPerSecond: options.handshakesPerIpPerSecond ?? SRT_DEFAULTS.handshakesPerIpPerSecond,
      maxPendingHandshakes: options.maxPendingHandshakes ?? SRT_DEFAULTS.maxPendingHandshakes,
      receiveBufferPackets: options.receiveBufferPackets ?? SRT_DEFAULTS.receiveBufferPackets,
      peerIdleTimeoutMs: options.peerIdleTimeoutMs ?? SRT_DEFAULTS.peerIdleTimeoutMs,
    };
    this.#socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    this.#socket.on('message', (msg, rinfo) => this.#onDatagram(msg, rinfo.address, rinfo.port));
    this.#socket.on('error', (err) => {
      this.countError(ErrorCodes.SRT_SOCKET_ERROR);
      this.#log.error({ err }, 'SRT socket error');
    });
  }

  protected override onListenerError(event: string, err: unknown): void {
    this.#log.error({ err, event }, 'an SRT listener event listener threw');
  }

  /** Live publishes, one per key. */
  get publishes(): SrtSource[] {
    return [...this.#live.values()].map((c) => c.source);
  }

  get connections(): ReadonlyMap<number, SrtConnection> {
    return this.#conns;
  }

  /** Sizes of every table a caller can make grow (leak tests, metrics). */
  get tracked(): { connections: number; peers: number; pending: number; addresses: number; live: number } {
    return {
      connections: this.#conns.size,
      peers: this.#byPeer.size,
      pending: this.#pending.size,
      addresses: this.#perIp.size,
      live: this.#live.size,
    };
  }

  /** Binds the UDP port; resolves with it (0 picks a free one). */
  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    if (this.#listening) throw new Error('already listening');
    this.#listening = true;
    await new Promise<void>((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.bind(port, host, () => {
        this.#socket.off('error', reject);
        resolve();
      });
    });
    // Room for bursts of 1316-byte packets between two event-loop turns.
    try {
      this.#socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch (err) {
      this.#log.warn({ err }, 'could not raise the UDP receive buffer; bursts may be lost');
    }
    const bound = this.#socket.address().port;
    this.#log.info({ port: bound, host }, 'SRT listening');
    return bound;
  }

  countError(code: ErrorCode): void {
    this.stats.errors.set(code, (this.stats.errors.get(code) ?? 0) + 1);
  }

  /** Closes a live publish by key (operator kick). */
  kick(key: string, message = 'kicked'): boolean {
    const conn = this.#live.get(key);
    if (!conn) return false;
    conn.close({ kind: 'kicked', message });
    return true;
  }

  #send(datagram: Buffer, address: string, port: number): void {
    if (this.#closed) return;
    this.#socket.send(datagram, port, address, (err) => {
      if (err) this.#log.debug({ err }, 'SRT send failed'); // UDP: the peer's NAK or retransmission covers it
    });
  }

  #timestamp(): number {
    return ((Date.now() - this.#start) * 1000) >>> 0;
  }

  #onDatagram(msg: Buffer, address: string, port: number): void {
    this.stats.datagrams++;
    if (this.#closed || msg.length < HEADER_SIZE || msg.length > MAX_DATAGRAM) {
      this.stats.ignored++;
      return;
    }
    const dest = msg.readUInt32BE(12);
    if (dest !== 0) {
      const conn = this.#conns.get(dest);
      if (!conn || conn.remoteAddress !== address || conn.remotePort !== port) {
        this.stats.ignored++;
        return;
      }
      let packet: ReturnType<typeof decodePacket>;
      try {
        packet = decodePacket(msg);
      } catch {
        this.stats.ignored++; // not SRT; decodePacket only throws SRT_PACKET_MALFORMED
        this.countError(ErrorCodes.SRT_PACKET_MALFORMED);
        return;
      }
      if (packet.kind === 'control' && packet.type === ControlType.Handshake) conn.resendConclusion();
      else conn.handle(packet);
      return;
    }
    let hs: Handshake;
    try {
      const packet = decodePacket(msg);
      if (packet.kind !== 'control' || packet.type !== ControlType.Handshake) {
        this.stats.ignored++;
        return;
      }
      hs = decodeHandshake(packet.cif);
    } catch {
      this.stats.ignored++; // unreadable handshake: no answer, nothing kept
      this.countError(ErrorCodes.SRT_PACKET_MALFORMED);
      return;
    }
    if (!this.#withinRate(address)) {
      this.stats.handshakesDropped++;
      this.countError(ErrorCodes.SRT_TOO_MANY_HANDSHAKES);
      return;
    }
    if (hs.type === HandshakeType.Induction) this.#induction(hs, address, port);
    else if (hs.type === HandshakeType.Conclusion) void this.#conclusion(hs, address, port);
    else this.stats.ignored++;
  }

  /** Counts a handshake against the per-second limits; false when over either. */
  #withinRate(address: string): boolean {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#rateWindow) {
      this.#rateWindow = second;
      this.#rateTotal = 0;
      this.#ratePerIp.clear();
    }
    const fromIp = this.#ratePerIp.get(address) ?? 0;
    if (this.#rateTotal >= this.#o.handshakesPerSecond || fromIp >= this.#o.handshakesPerIpPerSecond)
      return false;
    if (fromIp === 0 && this.#ratePerIp.size >= MAX_RATE_ENTRIES) return false;
    this.#rateTotal++;
    this.#ratePerIp.set(address, fromIp + 1);
    return true;
  }

  #sendHandshake(hs: Handshake, destSocketId: number, address: string, port: number): Buffer {
    const datagram = encodePacket({
      kind: 'control',
      type: ControlType.Handshake,
      subtype: 0,
      info: 0,
      timestamp: this.#timestamp(),
      destSocketId,
      cif: encodeHandshake(hs),
    });
    this.#send(datagram, address, port);
    return datagram;
  }

  #induction(req: Handshake, address: string, port: number): void {
    this.stats.inductions++;
    this.#sendHandshake(
      {
        version: 5,
        encryption: 0,
        extension: SRT_MAGIC,
        initialSeq: req.initialSeq,
        mtu: req.mtu,
        flowWindow: req.flowWindow,
        type: HandshakeType.Induction,
        socketId: this.#listenerId,
        cookie: this.#cookies.make(address, port),
        peerIp: encodePeerIp(address),
      },
      req.socketId,
      address,
      port,
    );
  }

  #reject(req: Handshake, address: string, port: number, refusal: Refusal): void {
    this.stats.rejections++;
    this.countError(refusal.code);
    this.#log.info(
      { remote: address, code: refusal.code, reject: refusal.reject },
      `SRT caller refused: ${refusal.reason}`,
    );
    this.#sendHandshake(
      {
        version: 5,
        encryption: 0,
        extension: 0,
        initialSeq: req.initialSeq,
        mtu: req.mtu,
        flowWindow: req.flowWindow,
        type: REJECT_BASE + refusal.reject,
        socketId: this.#listenerId,
        cookie: 0,
        peerIp: encodePeerIp(address),
      },
      req.socketId,
      address,
      port,
    );
  }

  async #conclusion(req: Handshake, address: string, port: number): Promise<void> {
    this.stats.conclusions++;
    if (!this.#cookies.check(address, port, req.cookie)) {
      this.stats.handshakesDropped++;
      this.countError(ErrorCodes.SRT_HANDSHAKE_INVALID);
      return;
    }
    const peerKey = `${address}|${port}|${req.socketId}`;
    const existing = this.#byPeer.get(peerKey);
    if (existing) {
      existing.resendConclusion();
      return;
    }
    if (this.#pending.has(peerKey)) return; // the answer goes out when the hook decides
    const refuse = (reject: RejectReasonId, code: ErrorCode, reason: string): void =>
      this.#reject(req, address, port, { reject, code, reason });
    if (req.version !== 5 || !req.hsReq) {
      refuse(
        RejectReason.Version,
        ErrorCodes.SRT_HANDSHAKE_INVALID,
        `handshake version ${req.version} (HSv5 needed)`,
      );
      return;
    }
    if ((req.hsReq.flags & SrtFlag.Stream) !== 0) {
      refuse(RejectReason.MessageApi, ErrorCodes.SRT_HANDSHAKE_INVALID, 'file/stream mode is not live');
      return;
    }
    if (req.congestion !== undefined && req.congestion !== 'live') {
      refuse(RejectReason.Congestion, ErrorCodes.SRT_HANDSHAKE_INVALID, 'congestion control is not live');
      return;
    }
    const fromIp = this.#perIp.get(address) ?? 0;
    if (
      this.#conns.size + this.#pending.size >= this.#o.maxConnections ||
      this.#pending.size >= this.#o.maxPendingHandshakes
    ) {
      refuse(RejectReason.Overload, ErrorCodes.SRT_TOO_MANY_CONNECTIONS, 'too many connections');
      return;
    }
    if (fromIp >= this.#o.maxConnectionsPerIp) {
      refuse(
        RejectReason.Overload,
        ErrorCodes.SRT_TOO_MANY_CONNECTIONS,
        'too many connections from this address',
      );
      return;
    }
    if (req.streamIdTooLong) {
      refuse(RejectReason.Unacceptable, ErrorCodes.SRT_STREAM_ID_TOO_LONG, 'stream id longer than 512 bytes');
      return;
    }
    const parsed = parseSrtStreamId(req.streamId);
    if (!parsed.ok) {
      // The id with its token redacted: what the caller sent is what an operator needs to see here.
      this.#log.debug(
        {
          remote: address,
          streamId: redactUrl(req.streamId ?? '').replace(/([,:]s=)[^,]*/g, '$1[redacted]'),
        },
        'unusable stream id',
      );
      refuse(parsed.reject, parsed.code, parsed.reason);
      return;
    }
    const target = parsed.target;
    this.#pending.add(peerKey);
    let decision: AuthDecision;
    try {
      decision = await this.#authorizeWithTimeout(target, address);
    } finally {
      this.#pending.delete(peerKey);
    }
    if (this.#closed) return;
    if (!decision.allow) {
      const r = rejectFor(decision);
      refuse(r.reject, r.code, r.reason);
      return;
    }
    // Encryption: a stream with a passphrase must be encrypted with it; one without must not be.
    const passphrase = this.#passphrase(target.key);
    let decryptor: SrtDecryptor | null = null;
    if (req.kmReq && passphrase === null) {
      refuse(
        RejectReason.Unsecure,
        ErrorCodes.SRT_BAD_SECRET,
        'the caller encrypts; this stream has no passphrase',
      );
      return;
    }
    if (passphrase !== null) {
      if (!req.kmReq) {
        refuse(RejectReason.Unsecure, ErrorCodes.SRT_BAD_SECRET, 'this stream needs a passphrase');
        return;
      }
      try {
        decryptor = SrtDecryptor.fromKeyMaterial(passphrase, decodeKeyMaterial(req.kmReq));
      } catch {
        decryptor = null; // unreadable key material: refused below like a wrong passphrase
      }
      if (!decryptor) {
        refuse(RejectReason.BadSecret, ErrorCodes.SRT_BAD_SECRET, 'wrong passphrase');
        return;
      }
    }
    this.#accept(req, address, port, target, decryptor, peerKey);
  }

  async #authorizeWithTimeout(target: SrtPublishTarget, address: string): Promise<AuthDecision> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        Promise.resolve().then(() =>
          this.#authorize({
            key: target.key,
            userId: target.userId,
            streamId: target.streamId,
            token: target.token,
            params: target.params,
            remoteAddress: address,
            protocol: 'srt',
          }),
        ),
        new Promise<AuthDecision>((resolve) => {
          timer = setTimeout(
            () => resolve({ allow: false, reason: 'authorization timed out' }),
            this.#o.authTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      this.countError(ErrorCodes.SRT_AUTH_FAILED);
      this.#log.error({ err, key: target.key }, 'authorization hook failed');
      return { allow: false, reason: 'authorization failed' };
    } finally {
      clearTimeout(timer);
    }
  }

  #newSocketId(): number {
    for (;;) {
      const id = randomInt(1, 0x3fffffff);
      if (!this.#conns.has(id) && id !== this.#listenerId) return id;
    }
  }

  #accept(
    req: Handshake,
    address: string,
    port: number,
    target: SrtPublishTarget,
    decryptor: SrtDecryptor | null,
    peerKey: string,
  ): void {
    const hsReq = req.hsReq!;
    const latencyMs = Math.max(this.#o.latencyMs, hsReq.sendDelay);
    const socketId = this.#newSocketId();
    const response: Handshake = {
      version: 5,
      encryption: req.kmReq ? req.encryption : 0,
      extension: HsExtFlag.HsReq | (req.kmReq ? HsExtFlag.KmReq : 0),
      initialSeq: req.initialSeq,
      mtu: Math.min(req.mtu, MAX_DATAGRAM),
      flowWindow: Math.min(req.flowWindow, this.#o.receiveBufferPackets),
      type: HandshakeType.Conclusion,
      socketId,
      cookie: 0,
      peerIp: encodePeerIp(address),
      hsRsp: {
        srtVersion: SRT_VERSION,
        flags: HSRSP_FLAGS,
        recvDelay: latencyMs,
        sendDelay: Math.max(this.#o.latencyMs, hsReq.recvDelay),
      },
      ...(req.kmReq ? { kmRsp: req.kmReq } : {}),
    };
    const conclusion = this.#sendHandshake(response, req.socketId, address, port);
    const info: PublishInfo = {
      id: this.#nextPublishId++,
      key: target.key,
      userId: target.userId,
      streamId: target.streamId,
      params: target.params,
      remoteAddress: address,
      startedAt: Date.now(),
      protocol: 'srt',
    };
    // The source reads the connection's counters; the connection needs the source: bound right below.
    let conn!: SrtConnection;
    const source = new SrtSource(info, () => conn.stats);
    conn = new SrtConnection({
      id: info.id,
      socketId,
      peerSocketId: req.socketId,
      remoteAddress: address,
      remotePort: port,
      initialSeq: req.initialSeq,
      latencyMs,
      receiveBufferPackets: this.#o.receiveBufferPackets,
      peerIdleTimeoutMs: this.#o.peerIdleTimeoutMs,
      decryptor,
      conclusion,
      source,
      send: (datagram) => this.#send(datagram, address, port),
      log: this.#log,
    });
    const c = conn;
    this.#conns.set(socketId, c);
    this.#byPeer.set(peerKey, c);
    this.#perIp.set(address, (this.#perIp.get(address) ?? 0) + 1);
    this.stats.connectionsAccepted++;
    this.stats.connectionsOpen = this.#conns.size;
    c.once('@close', (reason) => {
      this.#conns.delete(socketId);
      this.#byPeer.delete(peerKey);
      const n = (this.#perIp.get(address) ?? 1) - 1;
      if (n <= 0) this.#perIp.delete(address);
      else this.#perIp.set(address, n);
      this.stats.connectionsOpen = this.#conns.size;
      if (this.#live.get(target.key) === c) this.#live.delete(target.key);
      this.#log.info(
        { key: target.key, reason: reason.kind, code: reason.code, ...c.stats, ...source.stats.demux },
        `SRT publish ended: ${reason.message ?? reason.kind}`,
      );
      this.safeEmit('end', source, reason);
    });
    const previous = this.#live.get(target.key);
    if (previous) {
      this.stats.takeovers++;
      this.#log.info({ key: target.key, previous: previous.id, next: c.id }, 'takeover');
      this.safeEmit('takeover', { key: target.key, previous: previous.source.info, next: info });
      previous.close({ kind: 'takeover', message: `taken over by connection ${c.id}` });
    }
    this.#live.set(target.key, c);
    this.stats.publishes++;
    this.#log.info(
      { key: target.key, remote: address, latencyMs, encrypted: decryptor !== null },
      'SRT publish started',
    );
    this.safeEmit('publish', source);
  }

  /** Closes every connection (each sends its shutdown) and the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const conn of [...this.#conns.values()])
      conn.close({ kind: 'server-close', message: 'server closing' });
    this.#closed = true;
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}
