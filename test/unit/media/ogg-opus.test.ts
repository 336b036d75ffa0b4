import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OggOpusReader, OggOpusWriter, oggCrc, opusPacketSamples } from '../../../src/media/ogg-opus.ts';
import { loadFixture } from '../../fixtures/generate.ts';

describe('Ogg Opus', () => {
  it('reads each packet’s duration from its TOC (RFC 6716 §3.1)', () => {
    assert.equal(opusPacketSamples(Buffer.from([0xf8, 0xff, 0xfe])), 960); // CELT FB 20 ms, one frame
    assert.equal(opusPacketSamples(Buffer.from([0x70, 0])), 480); // hybrid FB 10 ms (config 14), one frame
    assert.equal(opusPacketSamples(Buffer.from([0x19, 0])), 2880 * 2); // SILK NB 60 ms (config 3), two frames
    assert.equal(opusPacketSamples(Buffer.from([0xfb, 0x03])), 960 * 3); // CELT 20 ms, code 3: three frames
    assert.equal(opusPacketSamples(Buffer.from([0xfb])), 0); // code 3 without its count byte
    assert.equal(opusPacketSamples(Buffer.alloc(0)), 0);
  });

  it('computes the Ogg CRC (polynomial 0x04c11db7, unreflected) as FFmpeg stores it', async () => {
    assert.equal(oggCrc(Buffer.alloc(0)), 0);
    const file = await loadFixture('tone-opus-mono.ogg');
    for (let at = 0, pages = 0; at < file.length && pages < 5; pages++) {
      const segments = file[at + 26]!;
      let size = 27 + segments;
      for (let i = 0; i < segments; i++) size += file[at + 27 + i]!;
      const page = Buffer.from(file.subarray(at, at + size));
      const stored = page.readUInt32LE(22);
      page.writeUInt32LE(0, 22);
      assert.equal(oggCrc(page), stored, `page ${pages}`);
      at += size;
    }
  });

  it('writes pages the reader (and FFmpeg) read back, packets intact, granule counting samples', async () => {
    const packets = new OggOpusReader().push(await loadFixture('tone-opus-mono.ogg'));
    assert.ok(packets.length >= 200, `${packets.length} packets`);
    const writer = new OggOpusWriter();
    const bytes = Buffer.concat([writer.header(1), ...packets.map((p) => writer.packet(p))]);
    assert.deepEqual(new OggOpusReader().push(bytes), packets);
    // The last page's granule position: every sample so far.
    const last = writer.packet(packets[0]!);
    assert.equal(Number(last.readBigInt64LE(6)), (packets.length + 1) * 960);
    // A packet of 255 × n bytes ends with a 0 lacing value.
    const big = Buffer.alloc(510, 1);
    big[0] = 0xf8;
    const page = writer.packet(big);
    assert.deepEqual([...page.subarray(26, 30)], [3, 255, 255, 0]);
    assert.deepEqual(new OggOpusReader().push(Buffer.concat([writer.header(1), page])), [big]);
  });
});
