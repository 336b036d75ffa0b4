import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildFfmpegArgs } from '../../../src/pipeline/ffmpeg-args.ts';

const INPUT =
  '-hide_banner -nostdin -loglevel warning -analyzeduration 100000 -probesize 32768 -f flv -i pipe:0';
const OUTPUT = '-f mp4 -movflags +frag_keyframe+empty_moov+default_base_moof -frag_duration 500000 pipe:1';

/** Golden argv per profile (joined with spaces for reading; the real thing is an array, never a shell). */
const golden: [string, Parameters<typeof buildFfmpegArgs>[0], string][] = [
  [
    'copy',
    { profile: 'copy', hasVideo: true, hasAudio: true },
    `${INPUT} -map 0:v:0 -map 0:a:0 -c copy ${OUTPUT}`,
  ],
  [
    'transcode (the seed encode, exactly)',
    { profile: 'transcode', hasVideo: true, hasAudio: true },
    `${INPUT} -map 0:v:0 -map 0:a:0 -c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline -level 3.1 -r 30 -g 60 -keyint_min 60 -sc_threshold 0 -b:v 2M -maxrate 2.5M -bufsize 4M -pix_fmt yuv420p -c:a aac -ar 48000 -ac 2 -b:a 128k ${OUTPUT}`,
  ],
  [
    'video-only copy',
    { profile: 'copy', hasVideo: true, hasAudio: false },
    `${INPUT} -map 0:v:0 -c copy ${OUTPUT}`,
  ],
  [
    'audio-only transcode, 250 ms fragments',
    { profile: 'transcode', hasVideo: false, hasAudio: true, fragmentMs: 250 },
    `${INPUT} -map 0:a:0 -c:a aac -ar 48000 -ac 2 -b:a 128k ${OUTPUT.replace('500000', '250000')}`,
  ],
];

describe('ffmpeg argv', () => {
  for (const [name, options, expected] of golden) {
    it(`builds ${name}`, () => {
      assert.equal(buildFfmpegArgs(options).join(' '), expected);
    });
  }

  it('takes nothing from the stream key: a hostile key cannot reach the argv', () => {
    // The builder has no parameter a key or URL could flow into; the argv is the same for any stream.
    const a = buildFfmpegArgs({ profile: 'copy', hasVideo: true, hasAudio: true });
    for (const arg of a) {
      assert.doesNotMatch(arg, /[;&|`$<>]|\.\./, `unexpected shell or path characters in ${arg}`);
    }
  });
});
