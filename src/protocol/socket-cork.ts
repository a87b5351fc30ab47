/** A byte stream that can hold its writes and pass them on together (a `node:net` socket). */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

/**
 * Holds a socket's writes from the first frame a task sends until that task's promise callbacks
 * have all run, then lets them go together: the acknowledgements of one group commit, or one
 * burst of appends, leave in one `writev` instead of one system call (and often one TCP segment)
 * per frame. Nothing waits for the event loop: the writes go out before it takes the next I/O.
 * (`ws` corks around each frame it writes; corks nest, so its uncork leaves ours in place.)
 */
export class SocketCork {
  readonly #socket: Corkable;
  readonly #defer: (release: () => void) => void;
  #held = false;

  /**
   * `defer` runs its callback once the current callback and every promise callback after it are
   * done: in Node, `process.nextTick` (this folder stays free of Node's globals).
   */
  constructor(socket: Corkable, defer: (release: () => void) => void) {
    this.#socket = socket;
    this.#defer = defer;
  }

  /** Call before each write. */
  hold(): void {
    if (this.#held) return;
    this.#held = true;
    this.#socket.cork();
    this.#defer(this.#release);
  }

  readonly #release = (): void => {
    this.#held = false;
    this.#socket.uncork();
  };
}
