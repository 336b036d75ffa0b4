import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRelayError } from '../../../src/shared/errors.ts';
import { chooseWhepCodecs, parseOffer, withHostCandidates } from '../../../src/webrtc/sdp.ts';

/** What Chromium offers for recvonly video + audio (trimmed to the lines that matter). */
const CHROMIUM_OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:0123456789012345678901',
  'a=fingerprint:sha-256 00:11',
  'a=setup:actpass',
  'a=mid:0',
  'a=recvonly',
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtpmap:102 H264/90000',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
  'a=rtpmap:103 rtx/90000',
  'a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f',
  'a=rtpmap:104 H264/90000',
  'a=rtpmap:106 H264/90000',
  'a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  'a=rtpmap:107 H264/90000',
  'a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 0',
  'a=mid:1',
  'a=recvonly',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:0 PCMU/8000',
  '',
].join('\r\n');

describe('SDP offers', () => {
  it('reads m-sections, mids, directions and codecs (fmtp before or after its rtpmap)', () => {
    const offer = parseOffer(CHROMIUM_OFFER);
    assert.equal(offer.media.length, 2);
    const [video, audio] = offer.media;
    assert.equal(video!.kind, 'video');
    assert.equal(video!.mid, '0');
    assert.equal(video!.direction, 'recvonly');
    const h264 = video!.codecs.filter((c) => c.name === 'h264');
    assert.deepEqual(
      h264.map((c) => [c.payloadType, c.fmtp['packetization-mode'], c.fmtp['profile-level-id']]),
      [
        [102, '1', '42001f'],
        [104, '0', '42e01f'],
        [106, '1', '42e01f'],
        [107, '1', '640c1f'],
      ],
    );
    assert.equal(audio!.codecs[0]!.name, 'opus');
    assert.equal(audio!.codecs[0]!.channels, 2);
  });

  const choices: { name: string; profileIdc?: number; video: number }[] = [
    { name: 'the source profile when offered (High)', profileIdc: 100, video: 107 },
    { name: 'constrained baseline when the source profile is not offered', profileIdc: 77, video: 106 },
    { name: 'constrained baseline with no source profile', video: 106 },
  ];
  for (const c of choices) {
    it(`picks H.264 mode 1: ${c.name}`, () => {
      const choice = chooseWhepCodecs(parseOffer(CHROMIUM_OFFER), c.profileIdc);
      assert.equal(choice.video.payloadType, c.video);
      assert.equal(choice.video.mid, '0');
      assert.deepEqual(choice.audio, { mid: '1', payloadType: 111, fmtpLine: 'minptime=10;useinbandfec=1' });
    });
  }

  const malformed: { name: string; text: string; code: string }[] = [
    { name: 'empty', text: '', code: 'WEBRTC_SDP_MALFORMED' },
    { name: 'not SDP', text: 'GET / HTTP/1.1\r\n', code: 'WEBRTC_SDP_MALFORMED' },
    { name: 'a bad line', text: CHROMIUM_OFFER.replace('s=-', 'garbage'), code: 'WEBRTC_SDP_MALFORMED' },
    {
      name: 'a bad m-line',
      text: CHROMIUM_OFFER.replace('m=audio 9', 'm=audio x'),
      code: 'WEBRTC_SDP_MALFORMED',
    },
    {
      name: 'a bad rtpmap',
      text: CHROMIUM_OFFER.replace('rtpmap:96 VP8/90000', 'rtpmap:96 VP8'),
      code: 'WEBRTC_SDP_MALFORMED',
    },
    {
      name: 'a payload type > 127',
      text: CHROMIUM_OFFER.replace('rtpmap:96 ', 'rtpmap:200 '),
      code: 'WEBRTC_SDP_MALFORMED',
    },
    {
      name: 'a hostile mid',
      text: CHROMIUM_OFFER.replace('a=mid:0', 'a=mid:$(rm -rf /)'),
      code: 'WEBRTC_SDP_MALFORMED',
    },
    {
      name: 'no fingerprint',
      text: CHROMIUM_OFFER.replace(/a=fingerprint:.*\r\n/, ''),
      code: 'WEBRTC_SDP_MALFORMED',
    },
    { name: 'too large', text: `${CHROMIUM_OFFER}${'a=x\r\n'.repeat(20_000)}`, code: 'WEBRTC_SDP_MALFORMED' },
    {
      name: 'too many m-lines',
      text: CHROMIUM_OFFER + 'm=audio 9 RTP/AVP 0\r\n'.repeat(20),
      code: 'WEBRTC_SDP_MALFORMED',
    },
  ];
  for (const m of malformed) {
    it(`refuses ${m.name}`, () => {
      assert.throws(
        () => chooseWhepCodecs(parseOffer(m.text)),
        (e) => isRelayError(e) && e.code === m.code,
      );
    });
  }

  it('refuses an offer whose video only sends (a WHIP offer sent to WHEP)', () => {
    const sendonly = CHROMIUM_OFFER.replace('a=recvonly', 'a=sendonly');
    assert.throws(
      () => chooseWhepCodecs(parseOffer(sendonly)),
      (e) => isRelayError(e) && e.code === 'WEBRTC_SDP_NO_VIDEO',
    );
  });

  it('survives random bytes: a RelayError or a parse, never anything else', () => {
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const lines = CHROMIUM_OFFER.split('\r\n');
      const at = rand() % lines.length;
      const line = lines[at]!;
      const cut = rand() % (line.length + 1);
      lines[at] = line.slice(0, cut) + String.fromCharCode(rand() % 128) + line.slice(cut + 1);
      try {
        chooseWhepCodecs(parseOffer(lines.join('\r\n')));
      } catch (e) {
        assert.ok(isRelayError(e), String(e));
      }
    }
  });

  it('replaces the answer’s candidates with the announced hosts in the first live m-section', () => {
    const answer = [
      'v=0',
      's=-',
      'm=application 0 UDP/DTLS/SCTP webrtc-datachannel',
      'm=video 50000 UDP/TLS/RTP/SAVPF 102',
      'a=mid:0',
      'a=candidate:1 1 UDP 2122317823 10.0.0.5 50000 typ host',
      'a=end-of-candidates',
      'm=audio 50000 UDP/TLS/RTP/SAVPF 111',
      'a=mid:1',
      'a=candidate:1 1 UDP 2122317823 10.0.0.5 50000 typ host',
      '',
    ].join('\r\n');
    const out = withHostCandidates(
      answer,
      [{ address: '203.0.113.7' }, { address: '::1', port: 9000 }],
      8189,
    );
    assert.equal(
      out,
      [
        'v=0',
        's=-',
        'm=application 0 UDP/DTLS/SCTP webrtc-datachannel',
        'm=video 50000 UDP/TLS/RTP/SAVPF 102',
        'a=mid:0',
        'a=candidate:1 1 UDP 2130706431 203.0.113.7 8189 typ host',
        'a=candidate:2 1 udp 2130706430 ::1 9000 typ host',
        'a=end-of-candidates',
        'm=audio 50000 UDP/TLS/RTP/SAVPF 111',
        'a=mid:1',
        '',
      ].join('\r\n'),
    );
  });
});
