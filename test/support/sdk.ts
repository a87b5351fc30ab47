import { wsTransport } from '../../src/sdk/index.js';
import type { ClientLink, ClientTransport, ConnectTarget, ConnectionState, LifelineSession, StateChange } from '../../src/sdk/index.js';

/**
 * The SDK's real WebSocket transport with handles for tests: `drop()` closes the current link from
 * the client side (as a tab losing its socket would), `hold()` makes connection attempts fail until
 * `release()`, and `baseUrl` can point reconnects at another relay (e.g. one restarted on a new port).
 */
export interface ControllableTransport extends ClientTransport {
  readonly current: ClientLink | undefined;
  /** Links opened so far. */
  readonly opened: number;
  drop(code?: number): boolean;
  hold(): void;
  release(): void;
  baseUrl: string | undefined;
}

export function controllableTransport(inner: ClientTransport = wsTransport()): ControllableTransport {
  let current: ClientLink | undefined;
  let opened = 0;
  let held = false;
  const t: ControllableTransport = {
    name: inner.name,
    baseUrl: undefined,
    get current() {
      return current;
    },
    get opened() {
      return opened;
    },
    async connect(target: ConnectTarget, signal: AbortSignal): Promise<ClientLink> {
      if (held) throw new Error('held by the test');
      const link = await inner.connect(t.baseUrl ? { ...target, baseUrl: t.baseUrl } : target, signal);
      current = link;
      opened++;
      return link;
    },
    drop(code = 4000) {
      const link = current;
      current = undefined;
      if (!link) return false;
      link.close(code, 'dropped by test');
      return true;
    },
    hold() {
      held = true;
    },
    release() {
      held = false;
    },
  };
  return t;
}

/** Resolves when the session reaches `state` (at once if it is there already). */
export function stateReached(session: LifelineSession, state: ConnectionState): Promise<StateChange> {
  return new Promise((resolve) => {
    if (session.state === state) {
      resolve({ state, transport: 'ws', at: Date.now() });
      return;
    }
    const off = session.on('state', (change) => {
      if (change.state !== state) return;
      off();
      resolve(change);
    });
  });
}
