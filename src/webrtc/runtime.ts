/**
 * libdatachannel's process-wide runtime, shared by every WebRTC server in the process (WHEP, WHIP).
 * node-datachannel keeps native callbacks referenced after a peer connection closed (measured: a closed
 * answering PeerConnection keeps Node's event loop alive), and only its global `cleanup()` lets them go. So
 * each server holds the runtime while it runs, and the last one to close cleans it up; the process can
 * then exit on its own.
 */
import { cleanup } from 'node-datachannel';

let holders = 0;

/** Call once per server start; pair with the returned release (style rule 6: a hook returns its undo). */
export function holdWebrtcRuntime(): () => void {
  holders++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    holders--;
    if (holders === 0) cleanup();
  };
}
