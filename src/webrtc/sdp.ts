/**
 * SDP offers as WHEP and WHIP receive them (RFC 8866 lines, RFC 8829 shapes), read just far enough to decide
 * what to answer: which m-sections there are, their mid and direction, and their codecs (rtpmap + fmtp).
 * Hand-written because the question is narrow (libdatachannel writes the answer; we only pick codecs and
 * refuse what cannot play) and because a peer sends it: every size is capped before anything is kept, and any
 * input either parses or throws one WEBRTC_SDP_MALFORMED RelayError. Pure.
 *
 * Also here, because it is the other half of the same text: replacing the answer's ICE candidates with the
 * announced WEBRTC_HOSTS ones (`withHostCandidates`), so a relay behind NAT, or a test behind a loss proxy,
 * announces the address the peer must reach.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';

/** Larger offers are refused before parsing (a browser's full offer is 5-10 KB). */
export const MAX_SDP_BYTES = 64 * 1024;
const MAX_LINES = 2000;
const MAX_MEDIA = 16;
const MAX_CODECS_PER_MEDIA = 64;
const MAX_LINE_LENGTH = 4096;
const MAX_FEEDBACK = 16;

export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SdpCodec {
  payloadType: number;
  /** Encoding name, lowercased (`h264`, `opus`, `vp8`, `rtx`…). */
  name: string;
  clockRate: number;
  channels: number;
  /** The fmtp parameters as written (for echoing), and parsed with lowercased keys. */
  fmtpLine: string;
  fmtp: Record<string, string>;
  /** Its `a=rtcp-fb` values, lowercased (`nack`, `nack pli`, `ccm fir`, …), `*` lines included. */
  feedback: string[];
}

export interface SdpMedia {
  /** `video`, `audio`, `application`, or whatever the peer wrote. */
  kind: string;
  port: number;
  protocol: string;
  mid: string | null;
  direction: SdpDirection;
  codecs: SdpCodec[];
}

export interface SdpOffer {
  media: SdpMedia[];
}

function malformed(message: string): RelayError {
  return new RelayError(ErrorCodes.WEBRTC_SDP_MALFORMED, `SDP: ${message}`);
}

const LINE = /^([a-z])=(.*)$/;
const M_LINE = /^(\S+) (\d{1,5})(?:\/\d+)? (\S+)(?: (.*))?$/;
const RTPMAP = /^(\d{1,3}) ([A-Za-z0-9_.+-]{1,32})\/(\d{1,6})(?:\/(\d{1,2}))?$/;
const FMTP = /^(\d{1,3}) (.*)$/;
const RTCP_FB = /^(\*|\d{1,3}) (.{1,64})$/;
const MID = /^[A-Za-z0-9_.+-]{1,32}$/;
const DIRECTIONS = new Set<string>(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

function parseFmtp(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return out;
}

/**
 * Parses an offer. Throws WEBRTC_SDP_MALFORMED when it is not SDP at all (no `v=0` first, a line that is
 * not `x=…`), too large, has no m-line, or has no ICE credentials or DTLS fingerprint (nothing could connect).
 */
export function parseOffer(text: string): SdpOffer {
  if (Buffer.byteLength(text) > MAX_SDP_BYTES) throw malformed(`larger than ${MAX_SDP_BYTES} bytes`);
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  if (lines.length > MAX_LINES) throw malformed(`more than ${MAX_LINES} lines`);
  if (lines[0] !== 'v=0') throw malformed('does not start with v=0');
  const media: SdpMedia[] = [];
  const pending = new Map<number, { fmtpLine: string }>();
  let pendingFeedback: Array<{ pt: string; value: string }> = [];
  let current: SdpMedia | null = null;
  let sessionDirection: SdpDirection = 'sendrecv';
  let ufrag = false;
  let pwd = false;
  let fingerprint = false;
  for (const line of lines) {
    if (line.length > MAX_LINE_LENGTH) throw malformed(`a line longer than ${MAX_LINE_LENGTH} characters`);
    const m = LINE.exec(line);
    if (!m) throw malformed(`not an SDP line: ${JSON.stringify(line.slice(0, 40))}`);
    const type = m[1]!;
    const value = m[2]!;
    if (type === 'm') {
      const mm = M_LINE.exec(value);
      if (!mm) throw malformed(`bad m-line: ${JSON.stringify(value.slice(0, 60))}`);
      if (media.length >= MAX_MEDIA) throw malformed(`more than ${MAX_MEDIA} m-lines`);
      pending.clear();
      pendingFeedback = [];
      current = {
        kind: mm[1]!,
        port: Number(mm[2]),
        protocol: mm[3]!,
        mid: null,
        direction: sessionDirection,
        codecs: [],
      };
      media.push(current);
      continue;
    }
    if (type !== 'a') continue;
    const colon = value.indexOf(':');
    const name = colon < 0 ? value : value.slice(0, colon);
    const arg = colon < 0 ? '' : value.slice(colon + 1);
    if (name === 'ice-ufrag') ufrag = arg.length > 0;
    else if (name === 'ice-pwd') pwd = arg.length > 0;
    else if (name === 'fingerprint') fingerprint = arg.length > 0;
    if (DIRECTIONS.has(name)) {
      if (current) current.direction = name as SdpDirection;
      else sessionDirection = name as SdpDirection;
      continue;
    }
    if (!current) continue;
    if (name === 'mid') {
      if (!MID.test(arg)) throw malformed(`bad mid ${JSON.stringify(arg.slice(0, 40))}`);
      current.mid = arg;
    } else if (name === 'rtpmap') {
      const r = RTPMAP.exec(arg);
      if (!r) throw malformed(`bad rtpmap ${JSON.stringify(arg.slice(0, 60))}`);
      const payloadType = Number(r[1]);
      if (payloadType > 127) throw malformed(`payload type ${payloadType} out of range`);
      if (current.codecs.length >= MAX_CODECS_PER_MEDIA) throw malformed('too many codecs in one m-line');
      const fmtpLine = pending.get(payloadType)?.fmtpLine ?? '';
      current.codecs.push({
        payloadType,
        name: r[2]!.toLowerCase(),
        clockRate: Number(r[3]),
        channels: r[4] ? Number(r[4]) : 1,
        fmtpLine,
        fmtp: parseFmtp(fmtpLine),
        feedback: pendingFeedback
          .filter((f) => f.pt === '*' || Number(f.pt) === payloadType)
          .map((f) => f.value),
      });
    } else if (name === 'rtcp-fb') {
      const f = RTCP_FB.exec(arg);
      if (!f) continue; // an odd feedback line only loses that feedback
      const value = f[2]!.trim().toLowerCase();
      const targets = current.codecs.filter((c) => f[1] === '*' || c.payloadType === Number(f[1]));
      for (const c of targets) if (c.feedback.length < MAX_FEEDBACK) c.feedback.push(value);
      // Like fmtp, it may come before its rtpmap.
      if (pendingFeedback.length < MAX_CODECS_PER_MEDIA * MAX_FEEDBACK)
        pendingFeedback.push({ pt: f[1]!, value });
    } else if (name === 'fmtp') {
      const f = FMTP.exec(arg);
      if (!f) throw malformed(`bad fmtp ${JSON.stringify(arg.slice(0, 60))}`);
      const payloadType = Number(f[1]);
      const codec = current.codecs.find((c) => c.payloadType === payloadType);
      // fmtp usually follows its rtpmap, but the order is not mandated: keep it for a later rtpmap.
      if (codec) {
        codec.fmtpLine = f[2]!;
        codec.fmtp = parseFmtp(f[2]!);
      } else if (pending.size < MAX_CODECS_PER_MEDIA) pending.set(payloadType, { fmtpLine: f[2]! });
    }
  }
  if (media.length === 0) throw malformed('no m-line');
  if (!ufrag || !pwd) throw malformed('no ICE credentials (a=ice-ufrag / a=ice-pwd)');
  if (!fingerprint) throw malformed('no DTLS fingerprint (a=fingerprint)');
  return { media };
}

/** The H.264 and Opus formats a WHEP answer sends, and the m-sections they answer. */
export interface WhepCodecChoice {
  video: { mid: string; payloadType: number; fmtpLine: string };
  /** Null when the offer has no audio m-line that can receive Opus. */
  audio: { mid: string; payloadType: number; fmtpLine: string } | null;
}

const receives = (m: SdpMedia): boolean => m.direction === 'recvonly' || m.direction === 'sendrecv';

/**
 * Picks what a WHEP answer sends: the first video m-line that can receive, H.264 in packetization mode 1
 * (browsers' WebRTC H.264 is mode 1; mode 0 cannot carry a frame larger than one packet), preferring the
 * profile of the source (`profileIdc`, from the SPS), then constrained baseline 42e0, then any. Audio: the
 * first audio m-line that can receive Opus. Throws WEBRTC_SDP_NO_VIDEO or WEBRTC_CODEC_UNSUPPORTED.
 */
export function chooseWhepCodecs(offer: SdpOffer, profileIdc?: number): WhepCodecChoice {
  const video = offer.media.find((m) => m.kind === 'video' && m.port !== 0 && receives(m));
  if (!video)
    throw new RelayError(ErrorCodes.WEBRTC_SDP_NO_VIDEO, 'the offer has no video m-line to receive');
  if (video.mid === null) throw malformed('the video m-line has no a=mid');
  const h264 = video.codecs.filter(
    (c) => c.name === 'h264' && c.clockRate === 90_000 && c.fmtp['packetization-mode'] === '1',
  );
  const profileOf = (c: SdpCodec): string => (c.fmtp['profile-level-id'] ?? '42e01f').toLowerCase();
  const wanted = profileIdc === undefined ? null : profileIdc.toString(16).padStart(2, '0');
  const pick =
    (wanted === null ? undefined : h264.find((c) => profileOf(c).startsWith(wanted))) ??
    h264.find((c) => profileOf(c).startsWith('42e0')) ??
    h264[0];
  if (!pick) {
    const offered = [...new Set(video.codecs.map((c) => c.name))].join(', ') || 'none';
    throw new RelayError(
      ErrorCodes.WEBRTC_CODEC_UNSUPPORTED,
      `the offer has no H.264 in packetization mode 1 (offered: ${offered})`,
    );
  }
  const audioMedia = offer.media.find(
    (m) =>
      m.kind === 'audio' &&
      m.port !== 0 &&
      m.mid !== null &&
      receives(m) &&
      m.codecs.some((c) => c.name === 'opus' && c.clockRate === 48_000),
  );
  const opus = audioMedia?.codecs.find((c) => c.name === 'opus' && c.clockRate === 48_000);
  return {
    video: { mid: video.mid, payloadType: pick.payloadType, fmtpLine: pick.fmtpLine },
    audio:
      audioMedia && opus
        ? { mid: audioMedia.mid!, payloadType: opus.payloadType, fmtpLine: opus.fmtpLine }
        : null,
  };
}

/** One announced ICE address (WEBRTC_HOSTS entry, resolved to an IP). */
export interface IceHost {
  address: string;
  /** The port to announce; the relay's own UDP port when absent. */
  port?: number;
}

/**
 * The answer with its candidates replaced: every `a=candidate` and `a=end-of-candidates` the library wrote
 * go, and the first m-section that is not rejected (port 0) gets one host candidate per announced address,
 * in the order given (highest priority first), then `a=end-of-candidates` (the answer is complete:
 * non-trickle). Only the first: every m-section shares its transport (libdatachannel always bundles), and
 * libdatachannel as a client refuses candidates in the other bundled sections.
 */
export function withHostCandidates(answer: string, hosts: readonly IceHost[], udpPort: number): string {
  const eol = answer.includes('\r\n') ? '\r\n' : '\n';
  const lines = answer.split(/\r?\n/).filter((l) => l.length > 0);
  const candidates = hosts.map((h, i) => {
    const family = h.address.includes(':') ? 'udp' : 'UDP';
    return `a=candidate:${i + 1} 1 ${family} ${2130706431 - i} ${h.address} ${h.port ?? udpPort} typ host`;
  });
  const out: string[] = [];
  let inLive = false;
  let placed = false;
  const closeSection = (): void => {
    if (inLive && !placed) {
      out.push(...candidates, 'a=end-of-candidates');
      placed = true;
    }
    inLive = false;
  };
  for (const line of lines) {
    if (line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('m=')) {
      closeSection();
      inLive = line.split(' ')[1] !== '0';
    }
    out.push(line);
  }
  closeSection();
  return out.join(eol) + eol;
}

const sends = (m: SdpMedia): boolean => m.direction === 'sendonly' || m.direction === 'sendrecv';

/**
 * Picks what a WHIP answer receives: the first video m-line that sends H.264 in packetization mode 1
 * (constrained baseline 42e0 preferred, as the glasses' libwebrtc offers it), and the first audio m-line
 * that sends Opus. Throws WEBRTC_SDP_NO_VIDEO or WEBRTC_CODEC_UNSUPPORTED.
 */
export function chooseWhipCodecs(offer: SdpOffer): WhepCodecChoice {
  const video = offer.media.find((m) => m.kind === 'video' && m.port !== 0 && sends(m));
  if (!video)
    throw new RelayError(ErrorCodes.WEBRTC_SDP_NO_VIDEO, 'the offer has no video m-line that sends');
  if (video.mid === null) throw malformed('the video m-line has no a=mid');
  const h264 = video.codecs.filter(
    (c) => c.name === 'h264' && c.clockRate === 90_000 && c.fmtp['packetization-mode'] === '1',
  );
  const pick =
    h264.find((c) => (c.fmtp['profile-level-id'] ?? '').toLowerCase().startsWith('42e0')) ?? h264[0];
  if (!pick) {
    const offered = [...new Set(video.codecs.map((c) => c.name))].join(', ') || 'none';
    throw new RelayError(
      ErrorCodes.WEBRTC_CODEC_UNSUPPORTED,
      `the offer sends no H.264 in packetization mode 1 (offered: ${offered})`,
    );
  }
  const audioMedia = offer.media.find(
    (m) =>
      m.kind === 'audio' &&
      m.port !== 0 &&
      m.mid !== null &&
      sends(m) &&
      m.codecs.some((c) => c.name === 'opus'),
  );
  const opus = audioMedia?.codecs.find((c) => c.name === 'opus' && c.clockRate === 48_000);
  return {
    video: { mid: video.mid, payloadType: pick.payloadType, fmtpLine: pick.fmtpLine },
    audio:
      audioMedia && opus
        ? { mid: audioMedia.mid!, payloadType: opus.payloadType, fmtpLine: opus.fmtpLine }
        : null,
  };
}
