/**
 * RTMPS on the relay: TLS in front of the same RTMP code. A real ffmpeg publishes over rtmps:// and the
 * stream becomes playable HLS; plain RTMP bytes on the TLS port and a client that never finishes its TLS
 * handshake are refused and counted; a half-configured certificate stops the start with a clear error.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { buildClientC0C1 } from '../../src/rtmp/handshake.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { ErrorCodes } from '../../src/shared/errors.ts';
import { startTool } from '../helpers/process.ts';
import { publisherArgv } from '../helpers/publishers.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';
import { selfSignedCert, type TestCert } from '../helpers/tls-cert.ts';

describe('RTMPS', () => {
  let cert: TestCert;
  let relay: Awaited<ReturnType<typeof startTestRelay>>['relay'];
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;

  before(async () => {
    cert = await selfSignedCert();
    ({ relay, records, hls } = await startTestRelay({
      RTMPS_PORT: '0',
      RTMPS_CERT_FILE: cert.certFile,
      RTMPS_KEY_FILE: cert.keyFile,
      RTMP_HANDSHAKE_TIMEOUT_SECONDS: '1',
    }));
  });

  after(async () => {
    await relay?.close();
    cert?.remove();
  });

  it('a real ffmpeg publishes over rtmps:// and the stream plays as HLS', async () => {
    assert.ok(relay.rtmpsPort && relay.rtmpsPort !== relay.rtmpPort);
    const { command, args } = publisherArgv('ffmpeg', {
      url: `rtmps://127.0.0.1:${relay.rtmpsPort}/live/tls@user.com/secure1`,
      seconds: 3,
      live: false,
    });
    // FFmpeg 5.1 does not verify certificates unless told to (-tls_verify 1): the self-signed one is fine.
    const result = await startTool(command, args, { timeoutMs: 60_000 }).done;
    assert.equal(result.code, 0, result.stderr);
    const record = records.get('secure1');
    assert.ok(record, 'the publish reached the relay through TLS');
    await record.ready;
    const res = await fetch(hls('tls-user.com/secure1/index.m3u8'));
    assert.equal(res.status, 200);
    assert.match(await res.text(), /#EXTINF/);
  });

  it('plain RTMP on the TLS port is refused and counted; RTMP on the plain port is unaffected', async () => {
    const before = relay.rtmp.stats.errors.get(ErrorCodes.RTMPS_HANDSHAKE_FAILED) ?? 0;
    const socket = net.connect(relay.rtmpsPort!, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(buildClientC0C1());
    await once(socket, 'close');
    assert.equal(relay.rtmp.stats.errors.get(ErrorCodes.RTMPS_HANDSHAKE_FAILED), before + 1);
    // The plain listener still answers an RTMP handshake.
    const plain = net.connect(relay.rtmpPort, '127.0.0.1');
    await once(plain, 'connect');
    plain.write(buildClientC0C1());
    const [s0] = (await once(plain, 'data')) as [Buffer];
    assert.equal(s0[0], 3, 'S0 version 3');
    plain.destroy();
  });

  it('a TLS client that never finishes its handshake is cut off after the handshake timeout', async () => {
    const socket = net.connect(relay.rtmpsPort!, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    const t0 = Date.now();
    await once(socket, 'close'); // silent: no ClientHello
    const waited = Date.now() - t0;
    assert.ok(waited >= 900 && waited < 10_000, `closed after ${waited} ms`);
  });

  it('a verifying TLS client sees the configured certificate', async () => {
    const socket = tls.connect({
      port: relay.rtmpsPort!,
      host: '127.0.0.1',
      ca: cert.cert,
      servername: 'localhost',
    });
    await once(socket, 'secureConnect');
    assert.equal(socket.authorized, true);
    assert.equal(socket.getPeerCertificate().subject.CN, 'localhost');
    socket.destroy();
  });

  it('only one of the two files, or an unreadable one, stops the start with a clear error', async () => {
    assert.throws(
      () => loadConfig({ RTMPS_CERT_FILE: cert.certFile }),
      (e: Error & { code?: string }) =>
        e.code === ErrorCodes.CONFIG_INVALID && /RTMPS_KEY_FILE/.test(e.message),
    );
    await assert.rejects(
      startTestRelay({
        RTMPS_PORT: '0',
        RTMPS_CERT_FILE: '/nonexistent/cert.pem',
        RTMPS_KEY_FILE: cert.keyFile,
      }),
      (e: Error & { code?: string }) =>
        e.code === ErrorCodes.CONFIG_INVALID &&
        /RTMPS_CERT_FILE \/nonexistent\/cert\.pem cannot be read: ENOENT/.test(e.message),
    );
  });
});
