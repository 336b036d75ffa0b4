/**
 * The per-stream WHEP output with fake sessions (function fields, style rule 9): what a viewer is sent
 * first, that it attaches to the stream only while it has viewers, and that B-frames close every session.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessUnit, VideoConfig } from '../../../src/media/access-unit.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { TypedEmitter } from '../../../src/shared/typed-emitter.ts';
import { WhepOutput } from '../../../src/webrtc/whep-output.ts';
import type { WhepSession, WhepSessionEvents } from '../../../src/webrtc/whep-session.ts';
import type { WhepSourceEvents, WhepSourceStream } from '../../../src/webrtc/whep-source.ts';

const SPS = Buffer.from([0x67, 0x42, 0xc0, 0x1f]);
const PPS = Buffer.from([0x68, 0xce]);
const VIDEO: VideoConfig = {
  kind: 'video',
  codec: 'h264',
  record: Buffer.concat([
    Buffer.from([1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 4]),
    SPS,
    Buffer.from([1, 0, 2]),
    PPS,
  ]),
  width: 0,
  height: 0,
};
const frame = (dts: number, keyframe: boolean, pts = dts): AccessUnit => ({
  track: 'video',
  dts,
  pts,
  keyframe,
  data: Buffer.from([0, 0, 0, 2, keyframe ? 0x65 : 0x41, dts & 0xff]),
});

class Source extends TypedEmitter<WhepSourceEvents> implements WhepSourceStream {
  gop: AccessUnit[] = [];
  tracks() {
    return { video: VIDEO, audio: null };
  }
  recentGop() {
    return this.gop;
  }
  push(au: AccessUnit): void {
    this.safeEmit('au', au);
  }
  end(): void {
    this.safeEmit('ended');
  }
}

class FakeSession extends TypedEmitter<WhepSessionEvents> {
  readonly sent: { time: number; nals: number }[] = [];
  ready = true;
  hasAudio = false;
  closedWith: string | null = null;
  constructor(readonly id: string) {
    super();
  }
  sendVideo(data: Buffer, time: number): void {
    let n = 0;
    for (let at = 0; at + 4 < data.length; at += 4 + data.readUInt32BE(at)) n++;
    this.sent.push({ time, nals: n });
  }
  sendAudio(): void {}
  close(reason: string): void {
    if (this.closedWith !== null) return;
    this.closedWith = reason;
    this.safeEmit('@close', reason);
  }
}

describe('WHEP output', () => {
  it('starts a viewer from the current GOP at once, packed 1 ms apart up to the newest frame', () => {
    const source = new Source();
    source.gop = [frame(1000, true), frame(1066, false), frame(1133, false)];
    const output = new WhepOutput({ source, log: silentLogger() });
    const session = new FakeSession('a');
    output.add(session as unknown as WhepSession);
    assert.deepEqual(
      session.sent.map((s) => s.time),
      [1131, 1132, 1133],
    );
    assert.equal(session.sent[0]!.nals, 3, 'SPS and PPS in front of the keyframe');
    source.push(frame(1200, false));
    assert.equal(session.sent.at(-1)!.time, 1200);
    assert.equal(source.listenerCount('au'), 1);
    session.close('bye');
    assert.equal(source.listenerCount('au'), 0, 'no viewer: no listener on the stream');
  });

  it('waits for a keyframe when there is no GOP yet', () => {
    const source = new Source();
    const output = new WhepOutput({ source, log: silentLogger() });
    const session = new FakeSession('a');
    output.add(session as unknown as WhepSession);
    source.push(frame(0, false));
    assert.equal(session.sent.length, 0);
    source.push(frame(33, true));
    source.push(frame(66, false));
    assert.deepEqual(
      session.sent.map((s) => s.time),
      [33, 66],
    );
  });

  it('closes every session when B-frames show up', () => {
    const source = new Source();
    const output = new WhepOutput({ source, log: silentLogger() });
    const a = new FakeSession('a');
    const b = new FakeSession('b');
    output.add(a as unknown as WhepSession);
    output.add(b as unknown as WhepSession);
    source.push(frame(0, true, 80));
    source.push(frame(33, false, 200));
    source.push(frame(66, false, 120)); // presented before the previous one: a B-frame
    assert.match(a.closedWith ?? '', /B-frames/);
    assert.match(b.closedWith ?? '', /B-frames/);
    assert.equal(output.closed, true);
    assert.equal(source.listenerCount('au'), 0);
  });

  it('closes every session when the stream ends', () => {
    const source = new Source();
    const output = new WhepOutput({ source, log: silentLogger() });
    const a = new FakeSession('a');
    output.add(a as unknown as WhepSession);
    source.end();
    assert.equal(a.closedWith, 'stream ended');
  });
});
