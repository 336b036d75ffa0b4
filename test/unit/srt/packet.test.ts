import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RelayError } from '../../../src/shared/errors.ts';
import {
  ControlType,
  decodeAck,
  decodeHandshake,
  decodeKeyMaterial,
  decodeLossList,
  decodePacket,
  encodeAck,
  encodeHandshake,
  encodeKeyMaterial,
  encodeLossList,
  encodePacket,
  encodePeerIp,
  type Handshake,
  HandshakeType,
  type Packet,
  SrtFlag,
} from '../../../src/srt/packet.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** One table for decode and encode (style rule 12): bytes ⇄ packet. */
const packetCases: { name: string; bytes: Buffer; packet: Packet }[] = [
  {
    name: 'data packet, whole message, in order, even key, retransmitted',
    bytes: hex('00000007 f4000003 000003e8 11223344 474041'),
    packet: {
      kind: 'data',
      seq: 7,
      position: 3,
      inOrder: true,
      key: 2,
      retransmitted: true,
      messageNumber: 3,
      timestamp: 1000,
      destSocketId: 0x11223344,
      payload: hex('474041'),
    },
  },
  {
    name: 'data packet at the top of the sequence space',
    bytes: hex('7fffffff 80000001 ffffffff 00000001'),
    packet: {
      kind: 'data',
      seq: 0x7fffffff,
      position: 2,
      inOrder: false,
      key: 0,
      retransmitted: false,
      messageNumber: 1,
      timestamp: 0xffffffff,
      destSocketId: 1,
      payload: Buffer.alloc(0),
    },
  },
  {
    name: 'ACKACK',
    bytes: hex('80060000 00000009 00000010 00000020'),
    packet: {
      kind: 'control',
      type: ControlType.AckAck,
      subtype: 0,
      info: 9,
      timestamp: 16,
      destSocketId: 32,
      cif: Buffer.alloc(0),
    },
  },
  {
    name: 'keepalive',
    bytes: hex('80010000 00000000 00000001 abcdef01'),
    packet: {
      kind: 'control',
      type: ControlType.Keepalive,
      subtype: 0,
      info: 0,
      timestamp: 1,
      destSocketId: 0xabcdef01,
      cif: Buffer.alloc(0),
    },
  },
];

const inductionRequest: Handshake = {
  version: 4,
  encryption: 0,
  extension: 2,
  initialSeq: 0x12345678,
  mtu: 1500,
  flowWindow: 8192,
  type: HandshakeType.Induction,
  socketId: 0x0a0b0c0d,
  cookie: 0,
  peerIp: encodePeerIp('127.0.0.1'),
};

const handshakeCases: { name: string; bytes: Buffer; hs: Handshake }[] = [
  {
    name: 'induction request (HSv4 form, as libsrt sends it)',
    bytes: hex(
      '00000004 0000 0002 12345678 000005dc 00002000 00000001 0a0b0c0d 00000000 0100007f 00000000 00000000 00000000',
    ),
    hs: inductionRequest,
  },
  {
    name: 'conclusion with HSREQ and a stream id (words little-endian)',
    bytes: hex(
      `00000005 0000 0005 00000001 000005dc 00002000 ffffffff 00000002 cafebabe 0100007f 00000000 00000000 00000000
       0001 0003 00010500 0000003f 00780078
       0005 0002 6c627570 0000683a`,
    ),
    hs: {
      version: 5,
      encryption: 0,
      extension: 5,
      initialSeq: 1,
      mtu: 1500,
      flowWindow: 8192,
      type: HandshakeType.Conclusion,
      socketId: 2,
      cookie: 0xcafebabe,
      peerIp: encodePeerIp('127.0.0.1'),
      hsReq: {
        srtVersion: 0x010500,
        flags:
          SrtFlag.TsbpdSnd |
          SrtFlag.TsbpdRcv |
          SrtFlag.Crypt |
          SrtFlag.TlPktDrop |
          SrtFlag.PeriodicNak |
          SrtFlag.RexmitFlg,
        recvDelay: 120,
        sendDelay: 120,
      },
      streamId: 'publ:h',
    },
  },
];

describe('srt packet codec', () => {
  for (const c of packetCases) {
    it(`decodes and encodes: ${c.name}`, () => {
      assert.deepEqual(decodePacket(c.bytes), c.packet);
      assert.deepEqual(encodePacket(c.packet), c.bytes);
    });
  }
  for (const c of handshakeCases) {
    it(`handshake: ${c.name}`, () => {
      assert.deepEqual(decodeHandshake(c.bytes), c.hs);
      assert.deepEqual(encodeHandshake(c.hs), c.bytes);
    });
  }

  it('keeps a stream id of 512 bytes and flags a longer one unread', () => {
    const hs = { ...inductionRequest, type: HandshakeType.Conclusion, streamId: 'x'.repeat(512) };
    assert.equal(decodeHandshake(encodeHandshake(hs)).streamId, 'x'.repeat(512));
    const long = decodeHandshake(encodeHandshake({ ...hs, streamId: 'x'.repeat(513) }));
    assert.equal(long.streamId, undefined);
    assert.equal(long.streamIdTooLong, true);
  });

  const refused: { name: string; bytes: Buffer }[] = [
    { name: 'a datagram shorter than a header', bytes: Buffer.alloc(15) },
    { name: 'a datagram longer than 1500 bytes', bytes: Buffer.alloc(1501) },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, () => {
      assert.throws(() => decodePacket(c.bytes), RelayError);
    });
  }

  it('refuses handshake extensions that overrun the datagram', () => {
    const b = Buffer.concat([encodeHandshake(inductionRequest), hex('0005 00ff 00000000')]);
    assert.throws(() => decodeHandshake(b), RelayError);
    assert.throws(() => decodeHandshake(Buffer.alloc(47)), RelayError);
  });

  it('ACK: light and full forms', () => {
    assert.deepEqual(encodeAck({ lastAck: 5 }), hex('00000005'));
    const full = {
      lastAck: 5,
      rtt: 100,
      rttVar: 50,
      bufferAvailable: 8000,
      packetRate: 1,
      linkCapacity: 2,
      receiveRate: 3,
    };
    assert.deepEqual(decodeAck(encodeAck(full)), full);
  });

  it('NAK loss list: single numbers and ranges', () => {
    const ranges = [
      [3, 3],
      [10, 20],
      [0x7ffffffe, 1],
    ] as const;
    const bytes = hex('00000003 8000000a 00000014 fffffffe 00000001');
    assert.deepEqual(encodeLossList(ranges), bytes);
    assert.deepEqual(decodeLossList(bytes), ranges);
    assert.throws(() => decodeLossList(hex('8000000a')), RelayError);
  });

  it('key material round-trips and refuses a wrong length', () => {
    const km = {
      keys: 1,
      keki: 0,
      cipher: 2,
      auth: 0,
      se: 2,
      salt: Buffer.alloc(16, 7),
      keyLength: 16,
      wrap: Buffer.alloc(24, 9),
    };
    const bytes = encodeKeyMaterial(km);
    assert.equal(bytes.length, 56);
    assert.deepEqual(decodeKeyMaterial(bytes), km);
    assert.throws(() => decodeKeyMaterial(bytes.subarray(0, 50)), RelayError);
  });
});

describe('srt packet codec against mutated input', () => {
  it('every decoder either decodes or throws SRT_PACKET_MALFORMED, never anything else', () => {
    let seed = 99;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const seeds = [
      ...packetCases.map((c) => c.bytes),
      ...handshakeCases.map((c) => c.bytes),
      encodeKeyMaterial({
        keys: 3,
        keki: 0,
        cipher: 2,
        auth: 0,
        se: 2,
        salt: Buffer.alloc(16, 1),
        keyLength: 32,
        wrap: Buffer.alloc(72, 2),
      }),
      encodeLossList([
        [1, 9],
        [20, 20],
      ]),
    ];
    const decoders = [decodePacket, decodeHandshake, decodeKeyMaterial, decodeLossList, decodeAck];
    for (let i = 0; i < 20_000; i++) {
      const base = seeds[rand() % seeds.length]!;
      let b = Buffer.from(base);
      for (let k = rand() % 5; k > 0 && b.length > 0; k--) b[rand() % b.length] = rand() & 0xff;
      if (rand() % 4 === 0) b = b.subarray(0, rand() % (b.length + 1));
      if (rand() % 8 === 0) b = Buffer.concat([b, Buffer.alloc(rand() % 64, rand() & 0xff)]);
      for (const decode of decoders) {
        try {
          decode(b);
        } catch (err) {
          assert.ok(err instanceof RelayError && err.code === 'SRT_PACKET_MALFORMED', String(err));
        }
      }
    }
  });
});
