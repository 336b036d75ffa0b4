/**
 * A loopback UDP relay that drops a share of datagrams each way, for loss tests of UDP protocols (WebRTC
 * here): peers send to its front port; each peer address gets its own upstream socket toward the target, so
 * the target sees one distinct source per peer and its answers go back to the right peer. Drops come from a
 * seeded generator (the same run drops the same datagrams) and are counted per direction.
 */
import dgram from 'node:dgram';

export interface LossyRelay {
  /** The port peers send to (announce it, e.g. through WEBRTC_HOSTS as 127.0.0.1:port). */
  port: number;
  readonly forwarded: { up: number; down: number };
  readonly dropped: { up: number; down: number };
  close(): Promise<void>;
}

export async function startLossyRelay(options: {
  targetPort: number;
  /** Share of datagrams dropped each way (0.05 = 5 %). */
  loss: number;
  seed?: number;
}): Promise<LossyRelay> {
  let seed = options.seed ?? 1;
  const random = (): number => {
    // mulberry32: small, seeded, good enough to spread drops.
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const forwarded = { up: 0, down: 0 };
  const dropped = { up: 0, down: 0 };
  const front = dgram.createSocket('udp4');
  const upstreams = new Map<string, dgram.Socket>();
  const MAX_PEERS = 64;

  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let up = upstreams.get(key);
    if (!up) {
      if (upstreams.size >= MAX_PEERS) return;
      const socket = dgram.createSocket('udp4');
      socket.bind(0, '127.0.0.1');
      socket.on('message', (back) => {
        if (random() < options.loss) {
          dropped.down++;
          return;
        }
        forwarded.down++;
        front.send(back, rinfo.port, rinfo.address);
      });
      upstreams.set(key, socket);
      up = socket;
    }
    if (random() < options.loss) {
      dropped.up++;
      return;
    }
    forwarded.up++;
    up.send(msg, options.targetPort, '127.0.0.1');
  });
  await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', resolve));
  return {
    port: front.address().port,
    forwarded,
    dropped,
    async close() {
      for (const s of upstreams.values()) s.close();
      upstreams.clear();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}
