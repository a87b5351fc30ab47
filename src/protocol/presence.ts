import type { Role } from './events.js';

/** A device connection's presence: live, briefly lost (`reconnecting`), or `gone`. */
export type DeviceState = 'connected' | 'reconnecting' | 'gone';

/**
 * The `data` of a `presence` event written by the relay (`from.role` is `system`): one device of
 * one participant changed state. Agents' own presence events (listening, thinking, speaking) come
 * from the agent and carry `{ state }` with whatever else the agent adds.
 */
export interface PresenceChange {
  participant: string;
  device: string;
  role: Role;
  previous: DeviceState | 'new';
  state: DeviceState;
  /** After this change: is the participant online (any of its devices connected)? */
  online: boolean;
  reason: string;
}

/** Reads a relay-written presence event's data; undefined when it is not one. */
export function asPresenceChange(data: unknown): PresenceChange | undefined {
  if (!data || typeof data !== 'object') return undefined;
  const d = data as Record<string, unknown>;
  const states = ['connected', 'reconnecting', 'gone'];
  if (typeof d['participant'] !== 'string' || typeof d['device'] !== 'string') return undefined;
  if (typeof d['state'] !== 'string' || !states.includes(d['state'])) return undefined;
  if (typeof d['previous'] !== 'string' || ![...states, 'new'].includes(d['previous'])) return undefined;
  if (d['role'] !== 'user' && d['role'] !== 'agent' && d['role'] !== 'system') return undefined;
  return {
    participant: d['participant'],
    device: d['device'],
    role: d['role'],
    previous: d['previous'] as PresenceChange['previous'],
    state: d['state'] as DeviceState,
    online: d['online'] === true,
    reason: typeof d['reason'] === 'string' ? d['reason'] : '',
  };
}
