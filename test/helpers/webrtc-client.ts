/**
 * A WHEP viewer made of node-datachannel (libdatachannel), for tests and benchmarks that need many viewers
 * or many cycles without a browser: offers recvonly H.264 (and Opus), non-trickle, POSTs to a WHEP URL,
 * applies the answer and counts the RTP packets its video track receives. `close()` DELETEs the session and
 * closes the peer connection.
 *
 * Measured limitation: with several of these connecting at once in the process that also runs the relay's
 * sessions, libdatachannel sometimes fails a DTLS handshake (certificate verify failed) or its own ICE
 * before the answer (with or without the relay's UDP mux, so not the mux); one at a time it never did in
 * 120 cycles. Negotiations are therefore serialized here, and a client-side failure is retried.
 */
import { Audio, PeerConnection, RtcpReceivingSession, type Track, Video } from 'node-datachannel';

export interface WhepClient {
  status: number;
  location: string | null;
  body: string;
  /** RTP packets received on the video track. */
  readonly videoPackets: number;
  /** Resolves once the peer connection is connected; rejects after `timeoutMs`. */
  connected(timeoutMs: number): Promise<void>;
  /** Resolves once `n` video packets arrived. */
  packets(n: number, timeoutMs: number): Promise<void>;
  close(options?: { delete?: boolean }): Promise<number | null>;
}

/** A complete offer from libdatachannel (no POST), recvonly or (`send`) sendonly: for tests that need offer text. */
export async function makeOffer(
  options: { audio?: boolean; send?: boolean } = {},
): Promise<{ sdp: string; close: () => void }> {
  const pc = new PeerConnection('offer', { iceServers: [], bindAddress: '127.0.0.1' });
  pc.onStateChange(() => {});
  const video = new Video('0', options.send ? 'SendOnly' : 'RecvOnly');
  video.addH264Codec(102);
  if (options.send) video.addSSRC(1234, 'glasses');
  const tracks: Track[] = [pc.addTrack(video)];
  if (options.audio) {
    const audio = new Audio('1', options.send ? 'SendOnly' : 'RecvOnly');
    audio.addOpusCodec(111);
    tracks.push(pc.addTrack(audio));
  }
  for (const t of tracks) t.onClosed(() => {}); // node-datachannel forgets a track once its close is reported
  const sdp = await new Promise<string>((resolve) => {
    pc.onGatheringStateChange((s) => {
      if (s === 'complete') resolve(pc.localDescription()!.sdp);
    });
    pc.setLocalDescription();
  });
  return {
    sdp,
    close: () => {
      for (const t of tracks) t.close();
      pc.close();
    },
  };
}

/**
 * A connected-or-refused WHEP client. libdatachannel as a client sometimes fails its own ICE before the
 * answer arrives on loopback ("Got a remote candidate without ICE transport", about 1 in 10 with audio):
 * such an attempt is closed (its session DELETEd) and retried, up to 3 times. The relay side is not involved.
 */
export async function whepClient(url: string, options: { audio?: boolean } = {}): Promise<WhepClient> {
  // One negotiation at a time in this process: concurrent libdatachannel offerers failed their ICE early.
  const turn = negotiating;
  let done: () => void = () => {};
  negotiating = new Promise<void>((resolve) => {
    done = resolve;
  });
  await turn;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await whepClientOnce(url, options);
      } catch (err) {
        if (attempt >= 3 || !(err instanceof ClientSideFailure)) throw err;
      }
    }
  } finally {
    done();
  }
}

let negotiating: Promise<void> = Promise.resolve();

class ClientSideFailure extends Error {}

async function whepClientOnce(url: string, options: { audio?: boolean }): Promise<WhepClient> {
  const pc = new PeerConnection('whep-client', { iceServers: [], bindAddress: '127.0.0.1' });
  let state = 'new';
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  const history: string[] = [];
  pc.onStateChange((s) => {
    state = s;
    history.push(s);
    wake();
  });
  const video = new Video('0', 'RecvOnly');
  video.addH264Codec(102);
  const videoTrack = pc.addTrack(video);
  videoTrack.setMediaHandler(new RtcpReceivingSession());
  let videoPackets = 0;
  videoTrack.onMessage(() => {
    videoPackets++;
    wake();
  });
  const tracks: Track[] = [videoTrack];
  if (options.audio) {
    const audio = new Audio('1', 'RecvOnly');
    audio.addOpusCodec(111);
    tracks.push(pc.addTrack(audio));
  }
  for (const t of tracks) t.onClosed(() => {}); // node-datachannel forgets a track once its close is reported
  const offer = await new Promise<string>((resolve) => {
    pc.onGatheringStateChange((s) => {
      if (s === 'complete') resolve(pc.localDescription()!.sdp);
    });
    pc.setLocalDescription();
  });
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: offer,
  });
  const body = await res.text();
  const location = res.headers.get('location');
  if (res.status === 201) {
    try {
      pc.setRemoteDescription(body, 'answer');
    } catch (err) {
      if (location) await fetch(new URL(location, url), { method: 'DELETE' });
      for (const t of tracks) t.close();
      pc.close();
      throw new ClientSideFailure(`${(err as Error).message} (states: ${history.join(' ')})`);
    }
  }
  const until = (done: () => boolean, timeoutMs: number, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (done()) return resolve();
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${what} not reached in ${timeoutMs} ms (state ${state}, ${videoPackets} packets)`));
      }, timeoutMs);
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
    });
  let closed = false;
  return {
    status: res.status,
    location,
    body,
    get videoPackets() {
      return videoPackets;
    },
    connected: (timeoutMs) => until(() => state === 'connected', timeoutMs, 'connected'),
    packets: (n, timeoutMs) => until(() => videoPackets >= n, timeoutMs, `${n} packets`),
    async close(closeOptions = {}) {
      if (closed) return null;
      closed = true;
      let status: number | null = null;
      if ((closeOptions.delete ?? true) && location) {
        status = (await fetch(new URL(location, url), { method: 'DELETE' })).status;
      }
      for (const t of tracks) t.close();
      pc.close();
      return status;
    },
  };
}
