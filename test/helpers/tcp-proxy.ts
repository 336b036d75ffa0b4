/**
 * A loopback TCP proxy for fault tests: every connection to it is forwarded to one target, both ways.
 * `blackhole()` makes the connections open now go silent, as a network path that drops every packet would:
 * nothing is forwarded either way any more and no FIN or RST is passed on (a side that closes is not told to
 * the other), while the sockets stay open, unread, so the sender's buffers fill and it stalls. Connections
 * made after that pass as before (the path healed, or the glasses roamed to another one). `close()` destroys
 * everything.
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections forwarding now (not blackholed, both sides open). */
  readonly open: number;
  /** The open connections go silent both ways, never closed; returns how many. */
  blackhole(): number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  silent: boolean;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  const held = new Set<Pair>();
  let accepted = 0;
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    accepted++;
    const upstream = net.connect(target);
    const pair: Pair = { client, upstream, silent: false };
    pairs.add(pair);
    const end = (): void => {
      if (pair.silent) return; // a blackhole passes nothing on, closes included
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
    upstream.once('connect', () => {
      if (pair.silent) return;
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    blackhole() {
      const n = pairs.size;
      for (const pair of pairs) {
        pair.silent = true;
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.client.pause();
        pair.upstream.pause();
        held.add(pair);
      }
      pairs.clear();
      return n;
    },
    async close() {
      for (const pair of [...pairs, ...held]) {
        pair.silent = true;
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      held.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
