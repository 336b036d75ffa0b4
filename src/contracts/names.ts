/**
 * Stream naming contract (architecture §3): what a userId and a streamId may contain, the publish path
 * shape, and how a userId appears in HLS paths. Every module that validates a name imports it from here.
 */

/** 1–128 of `A-Z a-z 0-9 . _ + @ -`, not starting with `.`, never containing `..`. */
export const USER_ID_PATTERN = /^(?!\.)(?!.*\.\.)[A-Za-z0-9._+@-]{1,128}$/;
/** 1–64 of `A-Z a-z 0-9 _ -`. */
export const STREAM_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** The only application path publishers use: `live/{userId}/{streamId}`. */
export const PUBLISH_APP = 'live';

export function isValidUserId(value: string): boolean {
  return USER_ID_PATTERN.test(value);
}

export function isValidStreamId(value: string): boolean {
  return STREAM_ID_PATTERN.test(value);
}

/** The userId as it appears in HLS URLs: `@` written as `-` (the shape apps already know). */
export function hlsUserPath(userId: string): string {
  return userId.replaceAll('@', '-');
}
