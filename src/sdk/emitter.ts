/** A typed event emitter: one per class, every `on` returns its unsubscribe. */
export class Emitter<Events extends { [K in keyof Events]: (...args: never[]) => void }> {
  #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();

  on<K extends keyof Events>(name: K, listener: Events[K]): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => {
      // Only drop the name if it still maps to this (now empty) set: a second call, or a call
      // after clear(), must not remove listeners subscribed since.
      if (set.delete(listener) && set.size === 0 && this.#listeners.get(name) === set) this.#listeners.delete(name);
    };
  }

  emit<K extends keyof Events>(name: K, ...args: Parameters<Events[K]>): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const l of [...set]) (l as (...a: Parameters<Events[K]>) => void)(...args);
  }

  listenerCount(name?: keyof Events): number {
    if (name !== undefined) return this.#listeners.get(name)?.size ?? 0;
    let n = 0;
    for (const s of this.#listeners.values()) n += s.size;
    return n;
  }

  clear(): void {
    this.#listeners.clear();
  }
}
