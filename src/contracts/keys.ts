/**
 * Stream keys, the one home of their shapes (architecture §3). Three meanings had grown apart in the code:
 * the cloud's store key (`userId/streamId`: an assignment, a reservation), the RTMP stream key
 * (`live/userId/streamId`: what a publisher names) and the HLS path (`userPath/streamId`). Each has a
 * builder here and nowhere else.
 */
import { hlsUserPath, PUBLISH_APP } from './names.ts';

export interface StreamRef {
  userId: string;
  streamId: string;
}

/** The cloud's key for a stream: placements, reservations, managed-stream state. */
export function storeKey(userId: string, streamId: string): string {
  return `${userId}/${streamId}`;
}

export function storeKeyOf(s: StreamRef): string {
  return storeKey(s.userId, s.streamId);
}

/** The RTMP stream key a publisher names: `live/{userId}/{streamId}`. */
export function publishKey(userId: string, streamId: string): string {
  return `${PUBLISH_APP}/${userId}/${streamId}`;
}

/** Where a stream sits under `/hls/`: `{userPath}/{streamId}`. */
export function hlsPath(userId: string, streamId: string): string {
  return `${hlsUserPath(userId)}/${streamId}`;
}
