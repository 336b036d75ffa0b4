/**
 * The one UDP port every WebRTC session shares (WEBRTC_UDP_PORT): libjuice's ICE UDP mux demultiplexes
 * sessions by their ICE credentials. An IceUdpMuxListener holds the port for the server's lifetime, so it
 * stays ours while no session exists and datagrams that match no session (a scan, a stale peer) land on it
 * and are dropped there (counted), never reaching a session.
 *
 * Port 0 picks a free port: libdatachannel reports the port it was asked for, not the one it bound, so we
 * ask the kernel for a free one through a throw-away dgram socket first, then bind the mux to it (retrying
 * if another process took it in between).
 */
import dgram from 'node:dgram';
import { IceUdpMuxListener } from 'node-datachannel';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';

const PICK_ATTEMPTS = 5;

/** A UDP port nothing is bound to right now on `address` (IPv4 or IPv6 by the address's form). */
export async function freeUdpPort(address: string): Promise<number> {
  const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return socket.address().port;
  } finally {
    socket.close();
  }
}

export class IceUdpPort {
  readonly port: number;
  readonly address: string;
  #listener: IceUdpMuxListener | null;
  #unhandled = 0;

  private constructor(listener: IceUdpMuxListener, port: number, address: string) {
    this.#listener = listener;
    this.port = port;
    this.address = address;
  }

  /** Binds the mux on `port` (0: a free one) and `address`; throws WEBRTC_UDP_PORT_FAILED. */
  static async open(port: number, address: string, log: Logger): Promise<IceUdpPort> {
    let lastError: unknown = null;
    for (let attempt = 0; attempt < (port === 0 ? PICK_ATTEMPTS : 1); attempt++) {
      const candidate = port === 0 ? await freeUdpPort(address) : port;
      try {
        const listener = new IceUdpMuxListener(candidate, address);
        const ice = new IceUdpPort(listener, candidate, address);
        listener.onUnhandledStunRequest((req) => {
          ice.#unhandled++;
          // Rate-limited by nature: only the first and every 1000th are logged (a scan sends thousands).
          if (ice.#unhandled === 1 || ice.#unhandled % 1000 === 0)
            log.debug({ from: `${req.host}:${req.port}`, count: ice.#unhandled }, 'STUN for no session');
        });
        return ice;
      } catch (err) {
        lastError = err;
      }
    }
    throw new RelayError(
      ErrorCodes.WEBRTC_UDP_PORT_FAILED,
      `cannot bind the WebRTC UDP port ${port === 0 ? '(a free one)' : port} on ${address}: ${String(lastError)}`,
      { cause: lastError },
    );
  }

  /** STUN requests that matched no session. */
  get unhandledStunRequests(): number {
    return this.#unhandled;
  }

  close(): void {
    if (!this.#listener) return;
    this.#listener.stop();
    this.#listener = null;
  }
}
