/**
 * What WHEP needs from a live stream (style rule 9: the consumer declares the small interface it needs):
 * its current track configurations, the access units since the latest video keyframe (so a viewer starts at
 * once), and the repaired access units as they come. `stream/` implements it (its Stream emits these events);
 * tests implement it with a fake that replays a fixture.
 */
import type { AccessUnit, SourceStart, TrackConfig } from '../media/access-unit.ts';

export type WhepSourceEvents = {
  /** A publish (re)started: its configurations, repaired. */
  input: [SourceStart];
  /** A track's configuration changed mid-publish. */
  config: [TrackConfig];
  /** One access unit on the repaired timeline, in decode order across tracks. */
  au: [AccessUnit];
  /** The stream is over (window expired or stopped): viewers are closed. */
  ended: [];
};

export interface WhepSourceStream {
  on<K extends keyof WhepSourceEvents>(event: K, listener: (...args: WhepSourceEvents[K]) => void): unknown;
  off<K extends keyof WhepSourceEvents>(event: K, listener: (...args: WhepSourceEvents[K]) => void): unknown;
  /** The configurations in force now (null before the first publish sent them). */
  tracks(): { video: TrackConfig | null; audio: TrackConfig | null };
  /** Access units (both tracks, decode order) from the latest video keyframe on; empty before one. */
  recentGop(): readonly AccessUnit[];
  /** Ask the publisher for a keyframe, where the ingest can (WHIP: PLI). */
  requestKeyframe?(): void;
  /** True once the stream ended (a lookup may still hold it for a grace period). */
  readonly ended?: boolean;
}
