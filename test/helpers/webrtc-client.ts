/**
 * A WHEP viewer made of node-datachannel (libdatachannel), for tests and benchmarks that need many viewers
 * or many cycles without a browser: offers recvonly H.264 (and Opus), non-trickle, POSTs to a WHEP URL,
 * applies the answer and counts the RTP packets its video track receives. `close()` DELETEs the session and
 * closes the peer connection.
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

/** A complete recvonly offer from libdatachannel (no POST): for tests that only need offer text. */
export async function makeOffer(
  options: { audio?: boolean } = {},
): Promise<{ sdp: string; close: () => void }> {
  const pc = new PeerConnection('offer', { iceServers: [], bindAddress: '127.0.0.1' });
  pc.onStateChange(() => {});
  const video = new Video('0', 'RecvOnly');
  video.addH264Codec(102);
  const tracks: Track[] = [pc.addTrack(video)];
  if (options.audio) {
    const audio = new Audio('1', 'RecvOnly');
    audio.addOpusCodec(111);
    tracks.push(pc.addTrack(audio));
  }
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

export async function whepClient(url: string, options: { audio?: boolean } = {}): Promise<WhepClient> {
  const pc = new PeerConnection('whep-client', { iceServers: [], bindAddress: '127.0.0.1' });
  let state = 'new';
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  pc.onStateChange((s) => {
    state = s;
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
  if (res.status === 201) pc.setRemoteDescription(body, 'answer');
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
