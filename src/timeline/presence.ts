import type { DeviceState, Json, Origin, PresenceChange, Role } from '../protocol/index.js';
import { hasClusterLiveness } from './store-capabilities.js';
import type { Timeline } from './timeline.js';

/** A device connected to another relay node, as that node publishes it. */
export interface RemoteDevice {
  participant: string;
  device: string;
  role: Role;
  state: DeviceState;
}

function presenceScope(sessionId: string): string {
  return `presence/${sessionId}`;
}

export interface DevicePresence {
  device: string;
  state: Exclude<DeviceState, 'gone'>;
}

export interface ParticipantPresence {
  participant: string;
  role: Role;
  online: boolean;
  devices: DevicePresence[];
}

export interface PresenceOptions {
  /** How long a device that lost its link stays `reconnecting` before it is `gone` (ms). */
  graceMs: number;
  /** Write every change to the session's timeline as a `presence` event (from the relay). */
  recordEvents: boolean;
  onChange?: (sessionId: string, change: PresenceChange) => void;
  onError?: (err: unknown) => void;
}

interface Device {
  participant: string;
  device: string;
  role: Role;
  /** Open connections of this device, and those of them that have gone silent. */
  conns: Set<object>;
  silent: Set<object>;
  state: DeviceState;
  grace: NodeJS.Timeout | undefined;
}

/** The relay's own origin for the events it writes. */
export const RELAY_ORIGIN: Origin = { participant: 'relay', device: 'relay', role: 'system' };

/**
 * Presence per device and per participant, derived from connections and their heartbeats:
 *   connected    a connection of the device is live;
 *   reconnecting its connections went silent or were lost, within the grace period;
 *   gone         it said goodbye, or the grace period ran out.
 * A participant is online while any of its devices is connected. Every change can be written to
 * the timeline as a `presence` event, ordered with everything else and replayable.
 */
export class PresenceTracker {
  readonly #timeline: Timeline;
  readonly #opts: PresenceOptions;
  readonly #sessions = new Map<string, Map<string, Device>>();
  #closed = false;

  constructor(timeline: Timeline, opts: PresenceOptions) {
    this.#timeline = timeline;
    this.#opts = opts;
  }

  /** A connection of this device is open and welcomed. */
  attach(sessionId: string, origin: Origin, conn: object): void {
    const d = this.#device(sessionId, origin);
    clearTimeout(d.grace);
    d.grace = undefined;
    d.conns.add(conn);
    d.silent.delete(conn);
    this.#update(sessionId, d, 'connected');
  }

  /** The connection stopped sending (missed heartbeats) but is not closed yet. */
  silent(sessionId: string, origin: Origin, conn: object): void {
    const d = this.#find(sessionId, origin);
    if (!d?.conns.has(conn)) return;
    d.silent.add(conn);
    this.#update(sessionId, d, 'heartbeats stopped');
  }

  /** A silent connection is sending again. */
  alive(sessionId: string, origin: Origin, conn: object): void {
    const d = this.#find(sessionId, origin);
    if (!d?.conns.has(conn)) return;
    d.silent.delete(conn);
    this.#update(sessionId, d, 'heartbeats resumed');
  }

  /** The connection ended: `clean` when the client said goodbye, else its link was lost. */
  detach(sessionId: string, origin: Origin, conn: object, clean: boolean): void {
    const d = this.#find(sessionId, origin);
    if (!d?.conns.delete(conn)) return;
    d.silent.delete(conn);
    if (d.conns.size === 0) {
      if (clean) {
        clearTimeout(d.grace);
        d.grace = undefined;
        this.#update(sessionId, d, 'left');
        return;
      }
      d.grace ??= setTimeout(() => {
        d.grace = undefined;
        this.#update(sessionId, d, 'grace period over');
      }, this.#opts.graceMs);
      d.grace.unref();
    }
    this.#update(sessionId, d, clean ? 'connection closed' : 'link lost');
  }

  /**
   * Who is in the session now across every relay node (with a cluster store: other nodes publish
   * their devices as live records); on one node, the same as view().
   */
  async clusterView(sessionId: string): Promise<ParticipantPresence[]> {
    const store = this.#timeline.store;
    if (!hasClusterLiveness(store)) return this.view(sessionId);
    const remote: RemoteDevice[] = [];
    for (const r of await store.liveElsewhere(presenceScope(sessionId))) if (Array.isArray(r.value)) remote.push(...(r.value as unknown as RemoteDevice[]));
    return this.view(sessionId, remote);
  }

  /** Who is in the session now (devices that are gone are not listed). */
  view(sessionId: string, remote: readonly RemoteDevice[] = []): ParticipantPresence[] {
    const out = new Map<string, ParticipantPresence>();
    for (const d of [...(this.#sessions.get(sessionId)?.values() ?? []), ...remote]) {
      if (d.state === 'gone') continue;
      const key = `${d.role}\u0000${d.participant}`;
      let p = out.get(key);
      if (!p) out.set(key, (p = { participant: d.participant, role: d.role, online: false, devices: [] }));
      // A device that moved to another node may be listed by both: connected wins.
      const known = p.devices.find((x) => x.device === d.device);
      if (known) {
        if (d.state === 'connected') known.state = 'connected';
      } else p.devices.push({ device: d.device, state: d.state });
      if (d.state === 'connected') p.online = true;
    }
    return [...out.values()];
  }

  /** With a cluster store: publishes this node's devices of the session for the other nodes. */
  #announce(sessionId: string): void {
    const store = this.#timeline.store;
    if (!hasClusterLiveness(store)) return;
    const devices: RemoteDevice[] = [];
    for (const d of this.#sessions.get(sessionId)?.values() ?? []) {
      if (d.state !== 'gone') devices.push({ participant: d.participant, device: d.device, role: d.role, state: d.state });
    }
    store.setLive(presenceScope(sessionId), devices.length > 0 ? (devices as unknown as Json) : undefined);
  }

  /** Forgets a session (deleted or expired) without writing anything. */
  forget(sessionId: string): void {
    for (const d of this.#sessions.get(sessionId)?.values() ?? []) clearTimeout(d.grace);
    this.#sessions.delete(sessionId);
  }

  /** Stops every timer; nothing more is written. */
  close(): void {
    this.#closed = true;
    for (const id of [...this.#sessions.keys()]) this.forget(id);
  }

  #device(sessionId: string, origin: Origin): Device {
    let devices = this.#sessions.get(sessionId);
    if (!devices) this.#sessions.set(sessionId, (devices = new Map()));
    const key = `${origin.participant}\u0000${origin.device}`;
    let d = devices.get(key);
    if (!d) {
      d = { participant: origin.participant, device: origin.device, role: origin.role, conns: new Set(), silent: new Set(), state: 'gone', grace: undefined };
      devices.set(key, d);
    }
    return d;
  }

  #find(sessionId: string, origin: Origin): Device | undefined {
    return this.#sessions.get(sessionId)?.get(`${origin.participant}\u0000${origin.device}`);
  }

  #update(sessionId: string, d: Device, reason: string): void {
    const live = d.conns.size - d.silent.size;
    const next: DeviceState = live > 0 ? 'connected' : d.conns.size > 0 || d.grace ? 'reconnecting' : 'gone';
    if (next === d.state) return;
    // A device starts out as `gone` (absent): its first change comes from `new`.
    const previous: DeviceState | 'new' = d.state === 'gone' ? 'new' : d.state;
    d.state = next;
    if (next === 'gone') this.#sessions.get(sessionId)?.delete(`${d.participant}\u0000${d.device}`);
    if (this.#closed) return;
    this.#announce(sessionId);
    const online = this.#online(sessionId, d.participant, d.role);
    const change: PresenceChange = {
      participant: d.participant,
      device: d.device,
      role: d.role,
      previous,
      state: next,
      online,
      reason,
    };
    this.#opts.onChange?.(sessionId, change);
    if (!this.#opts.recordEvents) return;
    this.#timeline
      .append(sessionId, [{ from: RELAY_ORIGIN, kind: 'presence', data: { ...change } as unknown as Json }])
      .then((results) => {
        const r = results[0];
        if (r && !r.ok && r.error.code !== 'SESSION_NOT_FOUND' && r.error.code !== 'SESSION_EXPIRED') this.#opts.onError?.(r.error);
      })
      .catch((err: unknown) => {
        const code = (err as { code?: string }).code;
        if (code !== 'SESSION_NOT_FOUND' && code !== 'SESSION_EXPIRED' && code !== 'SHUTTING_DOWN') this.#opts.onError?.(err);
      });
  }

  #online(sessionId: string, participant: string, role: Role): boolean {
    for (const d of this.#sessions.get(sessionId)?.values() ?? []) {
      if (d.participant === participant && d.role === role && d.state === 'connected') return true;
    }
    return false;
  }
}
