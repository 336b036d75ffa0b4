/**
 * A loopback UDP relay that loses and delays datagrams, for transport tests (SRT; WebRTC may use it too):
 * clients send to the proxy's port, each client address gets its own upstream socket toward the target, and
 * answers come back the same way. Each direction drops a datagram with its own probability and delays the
 * rest by a random jitter (which reorders them). The random source is seeded, so a run can be repeated.
 * Every socket and timer is owned and released by close().
 */
import dgram from 'node:dgram';

export interface LossProfile {
  /** Probability of dropping a datagram client → target. */
  upLoss: number;
  /** Probability of dropping a datagram target → client. */
  downLoss: number;
  /** Extra delay per datagram, uniform in [0, jitterMs]. */
  jitterMs: number;
  seed?: number;
}

export interface ProxyCounters {
  up: number;
  down: number;
  upDropped: number;
  downDropped: number;
}

export class UdpLossProxy {
  readonly counters: ProxyCounters = { up: 0, down: 0, upDropped: 0, downDropped: 0 };
  #profile: LossProfile;
  #seed: number;
  readonly #front = dgram.createSocket('udp4');
  readonly #upstreams = new Map<string, dgram.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #targetPort: number;
  readonly #targetHost: string;
  #closed = false;

  constructor(target: { port: number; host?: string }, profile: LossProfile) {
    this.#targetPort = target.port;
    this.#targetHost = target.host ?? '127.0.0.1';
    this.#profile = profile;
    this.#seed = profile.seed ?? 1;
    this.#front.on('message', (msg, rinfo) => this.#fromClient(msg, rinfo.address, rinfo.port));
  }

  /** Changes the loss and jitter from now on (a link that gets worse or recovers). */
  setProfile(profile: Partial<LossProfile>): void {
    this.#profile = { ...this.#profile, ...profile };
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#front.bind(0, '127.0.0.1', () => resolve()));
    return this.#front.address().port;
  }

  #random(): number {
    // mulberry32: small, seeded, good enough for loss patterns
    this.#seed = (this.#seed + 0x6d2b79f5) | 0;
    let t = this.#seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  #later(fn: () => void): void {
    const delay = this.#random() * this.#profile.jitterMs;
    if (delay < 0.5) {
      fn();
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) fn();
    }, delay);
    this.#timers.add(timer);
  }

  #fromClient(msg: Buffer, address: string, port: number): void {
    if (this.#closed) return;
    this.counters.up++;
    const key = `${address}:${port}`;
    let upstream = this.#upstreams.get(key);
    if (!upstream) {
      const socket = dgram.createSocket('udp4');
      socket.on('message', (answer) => {
        if (this.#closed) return;
        this.counters.down++;
        if (this.#random() < this.#profile.downLoss) {
          this.counters.downDropped++;
          return;
        }
        this.#later(() => this.#front.send(answer, port, address));
      });
      socket.on('error', () => {}); // a send to a closed port: the transport under test copes with loss
      this.#upstreams.set(key, socket);
      upstream = socket;
    }
    if (this.#random() < this.#profile.upLoss) {
      this.counters.upDropped++;
      return;
    }
    const socket = upstream;
    this.#later(() => socket.send(msg, this.#targetPort, this.#targetHost));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const sockets = [this.#front, ...this.#upstreams.values()];
    this.#upstreams.clear();
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
