import type { ProtocolConnection } from '../transport/index.js';

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
