import type { LifelineError } from '../protocol/index.js';
import type { AppendFrame, ErrorCode, EventKind, TimelineEvent } from '../protocol/index.js';
import type { ClientTransport } from './client-transport.js';
import type { PendingAppends } from './outbox.js';
import type { ReconnectPolicy } from './reconnect-policy.js';

/** What a LifelineSession is configured with, and what it reports. */

export interface SessionOptions {
  /** The relay's base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  /**
   * More relay nodes serving the same sessions (a cluster on one NATS store). A connection attempt
   * that fails, or a link that closes before its welcome, moves on to the next URL in turn.
   */
  urls?: string[];
  /** Access token (see mintToken); scoped to one session, participant and role. */
  token: string;
  /**
   * How to reach the relay. Several: the first is preferred; after `fallbackAfterFailures`
   * failed connection attempts the next is used (e.g. [webrtc, ws] when UDP is blocked).
   */
  transport: ClientTransport | ClientTransport[];
  /** Failed attempts on one transport before falling back to the next (default 2). */
  fallbackAfterFailures?: number;
  /** Bound on an in-place repair (ICE restart) before a full reconnect (default 2000 ms). */
  restartTimeoutMs?: number;
  /** Session id; by default the one the token names. */
  session?: string;
  /** This device's (or tab's) id; random by default. */
  device?: string;
  /** Producer id for this client's appends; defaults to the device id. */
  producer?: string;
  /**
   * Producer epoch. Default: continue a fresh producer at 0, or start the epoch after the relay's
   * known one (which fences any older instance of the same producer). Agents pass their lease's.
   */
  epoch?: number;
  /** Where the event stream starts: `-1` (default, the whole timeline), `now`, or an offset. */
  resume?: string;
  /** Events the relay may send ahead of our acknowledgements (default: the relay's choice). */
  window?: number;
  /** Ping interval; default: the transport's wish, else the relay's suggestion (welcome.heartbeatMs). */
  heartbeatMs?: number;
  /** Heartbeat intervals without any frame from the relay before the link counts as lost (default 2.5). */
  heartbeatMisses?: number;
  reconnect?: ReconnectPolicy;
  /** Appends waiting for acknowledgement before append() waits for room (default 4096). */
  maxOutbox?: number;
  /**
   * False: the relay does not send back the events this device appends (an agent streaming tokens
   * reads the others' events, not its own echo); catch-up after a reconnect still has them.
   * Default true.
   */
  echo?: boolean;
  /**
   * Only events of these kinds are read (catch-up and live); the relay skips the others. A device
   * that plays the agent's voice from its media track passes every kind but `audio.frame`.
   * Default: all kinds. Change it later with `setKinds()`.
   */
  kinds?: readonly EventKind[];
  /** Delay before acknowledging a partial batch of events (default 50 ms; a quarter of the window is acknowledged at once). */
  ackDelayMs?: number;
  /** Time allowed for one connection attempt, link and welcome (default 5 s). */
  connectTimeoutMs?: number;
  /**
   * Keeping unacknowledged appends across a restart of the client (a page reload, a process
   * restart): `save` receives them whenever they change (at most once per turn of the event loop;
   * not when the session is closed); the next instance passes what was saved as `restore`, with
   * the same `producer` (or device), and they are sent again first, each committed exactly once.
   * New appends wait until those are settled, then start a new epoch, which fences the earlier
   * instance should it still be alive (a duplicated tab). A restored append the relay cannot take
   * goes to `onRefused`: STALE_EPOCH when another instance took the producer over meanwhile (it
   * may or may not have been committed before: look in the timeline before sending it again),
   * SEQUENCE_GAP when the relay lacks the appends before it. Not with `epoch` (lease producers
   * have their own fencing).
   */
  outbox?: {
    restore?: PendingAppends | undefined;
    save?: (pending: PendingAppends) => void;
    /** A restored append was refused (default: an `error` event, emitted a task later). */
    onRefused?: (err: LifelineError, append: AppendFrame) => void;
  };
}

/**
 * `connected` first time; `reconnecting` when the link is lost (mode `restart`: repairing it in
 * place; `reconnect`: a new link); `restarted` when an in-place repair healed it; `resumed` when a
 * new link took over from where the stream was; `fallback` when switching to the next transport;
 * `closed` for good.
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'restarted' | 'resumed' | 'fallback' | 'closed';

export interface StateChange {
  state: ConnectionState;
  transport: string;
  /** Milliseconds since the epoch. */
  at: number;
  /** For `restarted` and `resumed`: how long the session was without a working link. */
  downMs?: number;
  /** For `reconnecting`: repair in place, or a new link. */
  mode?: 'restart' | 'reconnect';
  /** For `reconnecting`: why (heartbeat, link closed, relay asked, restart failed). */
  reason?: string;
  /** For `reconnecting`: the attempt about to be made (0-based) and its delay. */
  attempt?: number;
  delayMs?: number;
  /** The typed error that caused this change, if any. */
  error?: ErrorCode;
}

export interface SessionEvents {
  event: (event: TimelineEvent) => void;
  state: (change: StateChange) => void;
  /** Errors the relay reported that did not end the session (e.g. a refused append). */
  error: (err: LifelineError) => void;
}

/** A lease granted: this session now appends as `@<role>` at `epoch`. */
export interface LeaseGrant {
  role: string;
  epoch: number;
  /** Everything up to here was handled by earlier holders: read after it. */
  cursor: string;
}

export interface AppendOptions {
  track?: string;
  bin?: Uint8Array;
}
