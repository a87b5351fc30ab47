import type { Json } from '../protocol/index.js';
import type { Store, StoredEvent } from '../store/index.js';

/**
 * Optional capabilities a Store may offer beyond the contract. The timeline uses them when they
 * are there and behaves exactly as before when they are not (memory, sqlite).
 */

/** append() calls may overlap: the store keeps the per-session order of calls itself. */
export interface PipelinedAppends {
  readonly pipelinedAppends: true;
}

/** Stops a watch. */
export interface WatchHandle {
  stop(): void;
}

/**
 * The store can deliver a session's events as they are committed by any writer — other relay
 * nodes included — in order, and only once committed. Several nodes then share live sessions.
 */
export interface CommittedEventsWatch {
  /** `onClosed`: the timeline was closed (Durable Streams closure), by any writer. */
  watchCommitted(sessionId: string, afterSeq: number, onEvents: (events: StoredEvent[]) => void, onError?: (err: unknown) => void, onClosed?: () => void): WatchHandle;
}

export function hasPipelinedAppends(store: Store): store is Store & PipelinedAppends {
  return (store as Partial<PipelinedAppends>).pipelinedAppends === true;
}

export function hasCommittedWatch(store: Store): store is Store & CommittedEventsWatch {
  return typeof (store as Partial<CommittedEventsWatch>).watchCommitted === 'function';
}

/** Another node's live record of a scope (see ClusterLiveness). */
export interface LiveRecord {
  node: string;
  value: Json;
}

/**
 * Short-lived records each relay node keeps for what it holds right now (a lease's live holder,
 * the devices connected to it), renewed while held and gone soon after the node dies. With it,
 * lease liveness and presence are cluster-wide; without it (one node), they are this node's.
 */
export interface ClusterLiveness {
  readonly nodeId: string;
  /** Sets (or with undefined clears) this node's record for `scope`; kept renewed until cleared. */
  setLive(scope: string, value: Json | undefined): void;
  /** Other nodes' current records for `scope`. */
  liveElsewhere(scope: string): Promise<LiveRecord[]>;
}

export function hasClusterLiveness(store: Store): store is Store & ClusterLiveness {
  const s = store as Partial<ClusterLiveness>;
  return typeof s.setLive === 'function' && typeof s.liveElsewhere === 'function';
}
