/** Loopback listeners on free ports, for every test and benchmark that starts relays or a cloud. */
import net from 'node:net';

/** Env for a relay whose RTMP, HLS, control-API, metrics, SRT and WebRTC listeners take free loopback ports. */
export const LOOPBACK_RELAY_ENV = {
  RTMP_HOST: '127.0.0.1',
  RTMP_PORT: '0',
  HLS_HOST: '127.0.0.1',
  HLS_PORT: '0',
  API_HOST: '127.0.0.1',
  API_PORT: '0',
  METRICS_HOST: '127.0.0.1',
  METRICS_PORT: '0',
  SRT_HOST: '127.0.0.1',
  SRT_PORT: '0',
  WEBRTC_UDP_HOST: '127.0.0.1',
  WEBRTC_UDP_PORT: '0',
  WEBRTC_HOSTS: '127.0.0.1',
} as const;

/** Env for a cloud on a free loopback port. */
export const LOOPBACK_CLOUD_ENV = { CLOUD_HOST: '127.0.0.1', CLOUD_PORT: '0' } as const;

/** A port nothing listens on right now (for a peer that must start later on a known port). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
