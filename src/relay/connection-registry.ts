import type { Origin } from '../protocol/index.js';
import type { ProtocolConnection } from '../transport/index.js';

export interface ParticipantView {
  participant: string;
  role: Origin['role'];
  devices: string[];
}

/** Every open protocol connection, by session: who is connected right now, and what to close on shutdown. */
export class ConnectionRegistry {
  readonly #bySession = new Map<string, Set<ProtocolConnection>>();

  add(c: ProtocolConnection): void {
    let set = this.#bySession.get(c.sessionId);
    if (!set) this.#bySession.set(c.sessionId, (set = new Set()));
    set.add(c);
  }

  remove(c: ProtocolConnection): void {
    const set = this.#bySession.get(c.sessionId);
    if (!set) return;
    set.delete(c);
    if (set.size === 0) this.#bySession.delete(c.sessionId);
  }

  participants(sessionId: string): ParticipantView[] {
    const out = new Map<string, ParticipantView>();
    for (const c of this.#bySession.get(sessionId) ?? []) {
      const o = c.origin;
      if (!o) continue;
      const key = `${o.role}\u0000${o.participant}`;
      let view = out.get(key);
      if (!view) out.set(key, (view = { participant: o.participant, role: o.role, devices: [] }));
      if (!view.devices.includes(o.device)) view.devices.push(o.device);
    }
    return [...out.values()];
  }

  connections(sessionId: string): ProtocolConnection[] {
    return [...(this.#bySession.get(sessionId) ?? [])];
  }

  all(): ProtocolConnection[] {
    return [...this.#bySession.values()].flatMap((set) => [...set]);
  }

  get size(): number {
    let n = 0;
    for (const set of this.#bySession.values()) n += set.size;
    return n;
  }
}
