/** The WHIP side of sdp.ts: which sending codecs a WHIP answer receives, and the feedback each offers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseWhipCodecs, parseOffer } from '../../../src/webrtc/sdp.ts';

/** The shape of libwebrtc's send-only offer (Chromium, the glasses' WhipStreamingService), trimmed. */
const OFFER = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'a=fingerprint:sha-256 AA:BB',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:0123456789012345678901',
  'a=mid:0',
  'a=sendonly',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:63 red/48000/2',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103',
  'a=mid:1',
  'a=sendonly',
  'a=rtcp-fb:* goog-remb',
  'a=rtpmap:96 VP8/90000',
  'a=rtcp-fb:96 nack',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtcp-fb:102 nack',
  'a=rtcp-fb:102 nack pli',
  'a=rtpmap:102 H264/90000',
  'a=rtcp-fb:102 ccm fir',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  'a=rtpmap:103 H264/90000',
  'a=fmtp:103 packetization-mode=0;profile-level-id=42e01f',
  '',
].join('\r\n');

describe('WHIP offers', () => {
  it('picks H.264 mode 1 and Opus from a send-only offer, whatever the m-line order', () => {
    const choice = chooseWhipCodecs(parseOffer(OFFER));
    assert.deepEqual(choice.video, {
      mid: '1',
      payloadType: 102,
      fmtpLine: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
    });
    assert.equal(choice.audio?.payloadType, 111);
    assert.equal(choice.audio?.mid, '0');
  });

  it('reads rtcp-fb per codec, before or after its rtpmap, and `*` for all', () => {
    const video = parseOffer(OFFER).media[1]!;
    const fb = (pt: number) => video.codecs.find((c) => c.payloadType === pt)!.feedback;
    assert.deepEqual(fb(102), ['goog-remb', 'nack', 'nack pli', 'ccm fir']);
    assert.deepEqual(fb(96), ['goog-remb', 'nack']);
    assert.deepEqual(fb(103), ['goog-remb']);
  });

  it('refuses an offer with only mode-0 H.264 or none', () => {
    const mode0 = OFFER.replace('packetization-mode=1;profile', 'packetization-mode=0;profile');
    assert.throws(() => chooseWhipCodecs(parseOffer(mode0)), { code: 'WEBRTC_CODEC_UNSUPPORTED' });
    const vp8 = OFFER.replace(/H264/g, 'VP9');
    assert.throws(() => chooseWhipCodecs(parseOffer(vp8)), /offered: vp8, rtx, vp9/);
  });

  it('has no audio choice when the audio m-line only receives', () => {
    const recv = OFFER.replace('a=mid:0\r\na=sendonly', 'a=mid:0\r\na=recvonly');
    assert.equal(chooseWhipCodecs(parseOffer(recv)).audio, null);
  });
});
