/**
 * RTMP messages (Adobe RTMP spec §5.4 control messages, §6.2 user control, §7 commands and data), pure:
 * RawMessage ⇄ a typed union. One case table in the tests drives both directions.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import { type Amf0Encodable, type Amf0Value, decodeAmf0All, encodeAmf0 } from './amf0.ts';
import type { RawMessage } from './chunk.ts';

export const MessageType = {
  SetChunkSize: 1,
  Abort: 2,
  Acknowledgement: 3,
  UserControl: 4,
  WindowAckSize: 5,
  SetPeerBandwidth: 6,
  Audio: 8,
  Video: 9,
  DataAmf3: 15,
  SharedObjectAmf3: 16,
  CommandAmf3: 17,
  DataAmf0: 18,
  SharedObjectAmf0: 19,
  CommandAmf0: 20,
  Aggregate: 22,
} as const;
export type MessageTypeId = (typeof MessageType)[keyof typeof MessageType];

export const UserControlEvent = {
  StreamBegin: 0,
  StreamEof: 1,
  StreamDry: 2,
  SetBufferLength: 3,
  StreamIsRecorded: 4,
  PingRequest: 6,
  PingResponse: 7,
} as const;

/** Chunk stream ids the server sends on (rtmp.md: control on 2, commands on 3). */
export const ControlCsid = 2;
export const CommandCsid = 3;

export type Message =
  | { kind: 'set-chunk-size'; size: number }
  | { kind: 'abort'; csid: number }
  | { kind: 'acknowledgement'; sequence: number }
  | { kind: 'user-control'; event: number; value: number; extra?: number }
  | { kind: 'window-ack-size'; size: number }
  | { kind: 'set-peer-bandwidth'; size: number; limitType: number }
  | { kind: 'audio'; timestamp: number; streamId: number; data: Buffer }
  | { kind: 'video'; timestamp: number; streamId: number; data: Buffer }
  | { kind: 'data'; timestamp: number; streamId: number; values: Amf0Value[]; body: Buffer }
  | { kind: 'command'; streamId: number; name: string; transactionId: number; args: Amf0Value[] }
  | { kind: 'aggregate'; timestamp: number; streamId: number; data: Buffer }
  | { kind: 'ignored'; type: number };

function malformed(what: string, length: number): RelayError {
  return new RelayError(ErrorCodes.RTMP_MESSAGE_MALFORMED, `${what} message with a ${length}-byte body`);
}

function u32(payload: Buffer, what: string, at = 0): number {
  if (payload.length < at + 4) throw malformed(what, payload.length);
  return payload.readUInt32BE(at);
}

/** Decodes a chunk-layer message. Throws RTMP_MESSAGE_MALFORMED or AMF0_MALFORMED. */
export function decodeMessage(raw: RawMessage): Message {
  const { payload, timestamp, streamId } = raw;
  switch (raw.type) {
    case MessageType.SetChunkSize:
      return { kind: 'set-chunk-size', size: u32(payload, 'Set Chunk Size') & 0x7fffffff };
    case MessageType.Abort:
      return { kind: 'abort', csid: u32(payload, 'Abort') };
    case MessageType.Acknowledgement:
      return { kind: 'acknowledgement', sequence: u32(payload, 'Acknowledgement') };
    case MessageType.WindowAckSize:
      return { kind: 'window-ack-size', size: u32(payload, 'Window Acknowledgement Size') };
    case MessageType.SetPeerBandwidth: {
      if (payload.length < 5) throw malformed('Set Peer Bandwidth', payload.length);
      return { kind: 'set-peer-bandwidth', size: payload.readUInt32BE(0), limitType: payload[4]! };
    }
    case MessageType.UserControl: {
      if (payload.length < 6) throw malformed('User Control', payload.length);
      const event = payload.readUInt16BE(0);
      const value = payload.readUInt32BE(2);
      if (event === UserControlEvent.SetBufferLength && payload.length >= 10) {
        return { kind: 'user-control', event, value, extra: payload.readUInt32BE(6) };
      }
      return { kind: 'user-control', event, value };
    }
    case MessageType.Audio:
      return { kind: 'audio', timestamp, streamId, data: payload };
    case MessageType.Video:
      return { kind: 'video', timestamp, streamId, data: payload };
    case MessageType.Aggregate:
      return { kind: 'aggregate', timestamp, streamId, data: payload };
    case MessageType.DataAmf0:
    case MessageType.DataAmf3: {
      // An AMF3 data message starts with one format byte; the rest is AMF0 for what publishers send.
      const body = raw.type === MessageType.DataAmf3 ? payload.subarray(1) : payload;
      return { kind: 'data', timestamp, streamId, values: decodeAmf0All(body), body };
    }
    case MessageType.CommandAmf0:
    case MessageType.CommandAmf3: {
      const start = raw.type === MessageType.CommandAmf3 && payload[0] === 0 ? 1 : 0;
      const values = decodeAmf0All(payload, start);
      const [name, transactionId, ...args] = values;
      if (typeof name !== 'string') {
        throw new RelayError(ErrorCodes.RTMP_MESSAGE_MALFORMED, 'command without a name');
      }
      return {
        kind: 'command',
        streamId,
        name,
        transactionId:
          typeof transactionId === 'number' && Number.isFinite(transactionId) ? transactionId : 0,
        args,
      };
    }
    default:
      return { kind: 'ignored', type: raw.type };
  }
}

function u32Payload(...values: number[]): Buffer {
  const b = Buffer.allocUnsafe(values.length * 4);
  values.forEach((v, i) => {
    b.writeUInt32BE(v >>> 0, i * 4);
  });
  return b;
}

/** Encodes a message for the chunk writer. Control messages go on chunk stream 2, commands on 3. */
export function encodeMessage(message: Message): RawMessage {
  const control = (type: number, payload: Buffer): RawMessage => ({
    csid: ControlCsid,
    type,
    streamId: 0,
    timestamp: 0,
    payload,
  });
  switch (message.kind) {
    case 'set-chunk-size':
      return control(MessageType.SetChunkSize, u32Payload(message.size & 0x7fffffff));
    case 'abort':
      return control(MessageType.Abort, u32Payload(message.csid));
    case 'acknowledgement':
      return control(MessageType.Acknowledgement, u32Payload(message.sequence));
    case 'window-ack-size':
      return control(MessageType.WindowAckSize, u32Payload(message.size));
    case 'set-peer-bandwidth': {
      const b = Buffer.allocUnsafe(5);
      b.writeUInt32BE(message.size >>> 0, 0);
      b[4] = message.limitType;
      return control(MessageType.SetPeerBandwidth, b);
    }
    case 'user-control': {
      const b = Buffer.allocUnsafe(message.extra === undefined ? 6 : 10);
      b.writeUInt16BE(message.event, 0);
      b.writeUInt32BE(message.value >>> 0, 2);
      if (message.extra !== undefined) b.writeUInt32BE(message.extra >>> 0, 6);
      return control(MessageType.UserControl, b);
    }
    case 'audio':
      return {
        csid: 4,
        type: MessageType.Audio,
        streamId: message.streamId,
        timestamp: message.timestamp,
        payload: message.data,
      };
    case 'video':
      return {
        csid: 6,
        type: MessageType.Video,
        streamId: message.streamId,
        timestamp: message.timestamp,
        payload: message.data,
      };
    case 'aggregate':
      return {
        csid: 6,
        type: MessageType.Aggregate,
        streamId: message.streamId,
        timestamp: message.timestamp,
        payload: message.data,
      };
    case 'data':
      return {
        csid: 5,
        type: MessageType.DataAmf0,
        streamId: message.streamId,
        timestamp: message.timestamp,
        payload: encodeAmf0(...(message.values as Amf0Encodable[])),
      };
    case 'command':
      return {
        csid: CommandCsid,
        type: MessageType.CommandAmf0,
        streamId: message.streamId,
        timestamp: 0,
        payload: encodeAmf0(message.name, message.transactionId, ...(message.args as Amf0Encodable[])),
      };
    case 'ignored':
      throw new RangeError(`cannot encode message type ${message.type}`);
  }
}

/** One FLV-style tag carried inside an aggregate message. */
export interface AggregateTag {
  type: number;
  timestamp: number;
  data: Buffer;
}

/**
 * Splits an aggregate message (type 22: back-to-back FLV tags, each followed by a 4-byte back pointer) and
 * rebases the tags' timestamps on the message's own. Throws RTMP_MESSAGE_MALFORMED on a tag that overruns.
 */
export function splitAggregate(data: Buffer, messageTimestamp: number): AggregateTag[] {
  const tags: AggregateTag[] = [];
  let pos = 0;
  let base: number | undefined;
  while (pos < data.length) {
    if (data.length - pos < 11) throw malformed('aggregate (truncated tag header)', data.length);
    const type = data[pos]!;
    const size = data.readUIntBE(pos + 1, 3);
    const ts = (data.readUIntBE(pos + 4, 3) | (data[pos + 7]! << 24)) >>> 0;
    const end = pos + 11 + size;
    if (end > data.length) throw malformed('aggregate (tag overruns the message)', data.length);
    base ??= ts;
    tags.push({
      type,
      timestamp: (messageTimestamp + (ts - base)) >>> 0,
      data: data.subarray(pos + 11, end),
    });
    pos = Math.min(data.length, end + 4); // back pointer (previous tag size), not trusted
  }
  return tags;
}
