/**
 * Fuzz case generation for the RTMP stack, shared by the suite (10,000 cases) and the bench target
 * (1,000,000). Deterministic per seed: mutations of recorded real client connections, random bytes,
 * truncated handshakes and hand-made absurd lengths.
 */
import { encodeAmf0 } from '../../src/rtmp/amf0.ts';
import { ChunkWriter } from '../../src/rtmp/chunk-writer.ts';
import { buildClientC0C1, HANDSHAKE_SIZE } from '../../src/rtmp/handshake.ts';

const HANDSHAKE_BYTES = 1 + 2 * HANDSHAKE_SIZE;
const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x06, 0x7f, 0x80, 0xc0, 0xfe, 0xff];
const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xffff, 0xffffff, 0x1000000, 0x7fffffff, 0x80000000, 0xffffffff];

function handshake(): Buffer {
  return Buffer.concat([buildClientC0C1(), Buffer.alloc(HANDSHAKE_SIZE)]);
}

function int(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

/** Applies 1–8 random mutations; mostly after the handshake, where the interesting parsing is. */
function mutate(input: Buffer, random: () => number): Buffer {
  let buf = Buffer.from(input);
  const mutations = 1 + int(random, 8);
  for (let i = 0; i < mutations && buf.length > 0; i++) {
    const low = random() < 0.85 && buf.length > HANDSHAKE_BYTES + 1 ? HANDSHAKE_BYTES : 0;
    const at = low + int(random, buf.length - low);
    switch (int(random, 7)) {
      case 0:
        buf[at] = buf[at]! ^ (1 << int(random, 8));
        break;
      case 1:
        buf[at] = INTERESTING[int(random, INTERESTING.length)]!;
        break;
      case 2:
        if (at + 4 <= buf.length)
          buf.writeUInt32BE(INTERESTING_U32[int(random, INTERESTING_U32.length)]! >>> 0, at);
        break;
      case 3: {
        const insert = Buffer.alloc(1 + int(random, 64));
        for (let j = 0; j < insert.length; j++) insert[j] = int(random, 256);
        buf = Buffer.concat([buf.subarray(0, at), insert, buf.subarray(at)]);
        break;
      }
      case 4:
        buf = Buffer.concat([
          buf.subarray(0, at),
          buf.subarray(Math.min(buf.length, at + 1 + int(random, 256))),
        ]);
        break;
      case 5: {
        const len = 1 + int(random, 512);
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at, at + len), buf.subarray(at)]);
        break;
      }
      default:
        buf[at] = int(random, 256);
    }
  }
  return buf;
}

/** Chunk streams with absurd values a hostile peer may send after a valid handshake. */
function absurd(random: () => number): Buffer {
  const w = new ChunkWriter();
  const parts: Buffer[] = [handshake()];
  const cmd = (name: string, ...args: Parameters<typeof encodeAmf0>): Buffer =>
    w.write({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: encodeAmf0(name, ...args) });
  switch (int(random, 9)) {
    case 0: // declared message length at the 24-bit maximum
      parts.push(Buffer.from('03000000ffffff0900000000', 'hex'), Buffer.alloc(int(random, 4096)));
      break;
    case 1: {
      // huge chunk size, then a large message declared but not sent
      const scs = Buffer.alloc(4);
      scs.writeUInt32BE(INTERESTING_U32[int(random, INTERESTING_U32.length)]! & 0x7fffffff);
      parts.push(w.write({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: scs }));
      parts.push(
        Buffer.from('04000000 7fffff 09 01000000'.replace(/ /g, ''), 'hex'),
        Buffer.alloc(int(random, 70_000)),
      );
      break;
    }
    case 2: // every chunk stream id, one partial message each
      for (let csid = 64; csid < 64 + 200; csid++) {
        const b = Buffer.from([0x00, csid - 64, 0, 0, 0, 0, 0x10, 0, 9, 1, 0, 0, 0, 0xaa]);
        parts.push(b);
      }
      break;
    case 3: // AMF string claiming 65535 bytes, and a strict array claiming 4 billion entries
      parts.push(
        w.write({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: Buffer.from('02ffff61', 'hex') }),
      );
      parts.push(
        w.write({
          csid: 3,
          type: 20,
          streamId: 0,
          timestamp: 0,
          payload: Buffer.from('0a ffffffff 05'.replace(/ /g, ''), 'hex'),
        }),
      );
      break;
    case 4: {
      // nesting far past the depth limit
      const deep = Buffer.concat([
        Buffer.from('020007636f6e6e656374', 'hex'),
        ...Array.from({ length: 5000 }, () => Buffer.from('0300', 'hex')),
      ]);
      parts.push(w.write({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: deep }));
      break;
    }
    case 5: // commands out of order and with wrong types
      parts.push(cmd('publish', 1, null, 'x'), cmd('connect', 'x', 5), cmd('createStream', Number.NaN));
      break;
    case 6: // an aggregate whose inner sizes lie
      parts.push(cmd('connect', 1, { app: 'live/u' }), cmd('createStream', 2, null));
      parts.push(
        w.write({
          csid: 8,
          type: 20,
          streamId: 1,
          timestamp: 0,
          payload: encodeAmf0('publish', 3, null, 's', 'live'),
        }),
      );
      parts.push(
        w.write({
          csid: 6,
          type: 22,
          streamId: 1,
          timestamp: 0,
          payload: Buffer.from('09ffffff000000000000001701', 'hex'),
        }),
      );
      break;
    case 7: // extended timestamps everywhere, timestamps going backwards
      for (let i = 0; i < 50; i++) {
        parts.push(
          w.write({
            csid: 6,
            type: 9,
            streamId: 1,
            timestamp: int(random, 2) ? 0xffffffff - i : i,
            payload: Buffer.from('2701000000', 'hex'),
          }),
        );
      }
      break;
    default: // abort and set chunk size 0
      parts.push(Buffer.from('02000000000004020000000000000004', 'hex'));
      parts.push(Buffer.from('020000000000040100000000000000000', 'hex'));
  }
  return Buffer.concat(parts);
}

export type FuzzKind = 'mutated-recording' | 'random-bytes' | 'truncated-handshake' | 'absurd-lengths';

export function fuzzCase(recordings: Buffer[], random: () => number): { kind: FuzzKind; bytes: Buffer } {
  const r = random();
  if (r < 0.7) {
    const rec = recordings[int(random, recordings.length)]!;
    // Mostly the opening (handshake, commands, first frames): that is where the parsing state lives.
    const len = random() < 0.9 ? HANDSHAKE_BYTES + int(random, 24_000) : rec.length;
    return { kind: 'mutated-recording', bytes: mutate(rec.subarray(0, len), random) };
  }
  if (r < 0.8) {
    const bytes = Buffer.alloc(int(random, 8192));
    for (let i = 0; i < bytes.length; i++) bytes[i] = int(random, 256);
    if (random() < 0.5 && bytes.length > 0) bytes[0] = 3;
    const prefix = random() < 0.5 ? handshake() : Buffer.alloc(0);
    return { kind: 'random-bytes', bytes: Buffer.concat([prefix, bytes]) };
  }
  if (r < 0.88) {
    return { kind: 'truncated-handshake', bytes: handshake().subarray(0, int(random, HANDSHAKE_BYTES)) };
  }
  return { kind: 'absurd-lengths', bytes: absurd(random) };
}
