/**
 * Exact argv for the real publishers the relay must accept (shared/reference/rtmp.md): ffmpeg, GStreamer
 * rtmp2sink and GStreamer rtmpsink (librtmp, what the glasses use). Each makes 540x960 H.264 + AAC 44.1 kHz.
 */

export type PublisherKind = 'ffmpeg' | 'rtmp2sink' | 'rtmpsink';

export interface PublisherOptions {
  url: string;
  seconds: number;
  fps?: number;
  /** Video bitrate in kbit/s. */
  videoKbps?: number;
  /** Pace in real time (a live publisher), or push as fast as possible (for recordings). */
  live?: boolean;
  /** Keyframe interval in frames. */
  gop?: number;
}

export function publisherArgv(kind: PublisherKind, o: PublisherOptions): { command: string; args: string[] } {
  const fps = o.fps ?? 14;
  const kbps = o.videoKbps ?? 1000;
  const gop = o.gop ?? fps;
  const live = o.live ?? true;
  if (kind === 'ffmpeg') {
    return {
      command: 'ffmpeg',
      args: [
        '-hide_banner',
        '-loglevel',
        'error',
        ...(live ? ['-re'] : []),
        '-f',
        'lavfi',
        '-i',
        `testsrc2=size=540x960:rate=${fps}`,
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=440:sample_rate=44100',
        '-t',
        String(o.seconds),
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-tune',
        'zerolatency',
        '-g',
        String(gop),
        '-pix_fmt',
        'yuv420p',
        '-b:v',
        `${kbps}k`,
        '-maxrate',
        `${kbps}k`,
        '-bufsize',
        `${kbps * 2}k`,
        '-c:a',
        'aac',
        '-b:a',
        '128k',
        '-ac',
        '2',
        '-f',
        'flv',
        o.url,
      ],
    };
  }
  const frames = Math.round(o.seconds * fps);
  // avenc_aac takes 1024 samples per buffer from audiotestsrc's default 1024-sample buffers.
  const audioBuffers = Math.round((o.seconds * 44100) / 1024);
  // gst-launch joins its argv and parses it again: quote the location, which carries librtmp's " live=1".
  const sink =
    kind === 'rtmp2sink' ? ['rtmp2sink', `location="${o.url}"`] : ['rtmpsink', `location="${o.url} live=1"`];
  const args = [
    '-q',
    ...['flvmux', 'name=mux', 'streamable=true', '!', ...sink],
    ...['videotestsrc', `is-live=${live}`, `num-buffers=${frames}`, '!'],
    `video/x-raw,width=540,height=960,framerate=${fps}/1`,
    ...['!', 'x264enc', 'tune=zerolatency', `bitrate=${kbps}`, `key-int-max=${gop}`, 'speed-preset=veryfast'],
    ...['!', 'h264parse', '!', 'queue', '!', 'mux.'],
    ...['audiotestsrc', `is-live=${live}`, `num-buffers=${audioBuffers}`, 'samplesperbuffer=1024', '!'],
    'audio/x-raw,rate=44100,channels=2',
    ...['!', 'avenc_aac', 'bitrate=128000', '!', 'aacparse', '!', 'queue', '!', 'mux.'],
  ];
  return { command: 'gst-launch-1.0', args };
}
