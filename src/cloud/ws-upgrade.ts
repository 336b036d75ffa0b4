/** The one way the cloud's WebSockets accept a connection: authenticate the upgrade, or answer 401. */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';

export function acceptAuthenticated(
  wss: WebSocketServer,
  authenticate: (request: IncomingMessage) => Promise<string | null>,
  upgrade: { request: IncomingMessage; socket: Duplex; head: Buffer },
  adopt: (userId: string, ws: WebSocket) => void,
): void {
  const { request, socket, head } = upgrade;
  void authenticate(request).then(
    (userId) => {
      if (!userId) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => adopt(userId, ws));
    },
    () => socket.destroy(),
  );
}
