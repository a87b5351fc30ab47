import { ExponentialBackoff, connect } from '../../src/sdk/index.js';
import type { ClientTransport, LifelineSession } from '../../src/sdk/index.js';
import type { RelayUnderTest } from './relay.js';

/** Collects problems seen by clients, counting repeats instead of flooding the report. */
export class Problems {
  readonly #counts = new Map<string, number>();
  add(msg: string): void {
    this.#counts.set(msg, (this.#counts.get(msg) ?? 0) + 1);
  }
  list(prefix: string): string[] {
    return [...this.#counts].map(([m, n]) => `${prefix}${m}${n > 1 ? ` (×${n})` : ''}`);
  }
}

/** A message of a bare forwarder, parsed as JSON (undefined when it is not). */
export function parsed(data: string | Uint8Array): unknown {
  try {
    return JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A user and an agent on a fresh session of the relay under test. */
export interface RelayPair {
  user: LifelineSession;
  /** Connected with `resume: 'now'` and `echo: false`: it writes, and would read only the others' events. */
  agent: LifelineSession;
  /** True once close() was called: refusals after that are not problems. */
  readonly closing: boolean;
  close(): void;
}

export interface RelayPairOptions {
  /** Written into the session's metadata (`{ bench }`). */
  bench: string;
  userDevice: string;
  agentDevice: string;
  /** The user's transport (default WebSocket); the agent stays on WebSocket. */
  userTransport?: ClientTransport | undefined;
  maxOutbox?: number | undefined;
  problems: Problems;
}

/**
 * Creates a session and connects its user and agent, reporting every reconnect, close and error
 * to `problems` (a healthy run has none). Both give up after 5 s without a link.
 */
export async function openRelayPair(relay: RelayUnderTest, opts: RelayPairOptions): Promise<RelayPair> {
  const policy = (): ExponentialBackoff => new ExponentialBackoff({ giveUpAfterMs: 5000 });
  const session = await relay.createSession({ metadata: { bench: opts.bench } });
  const [userToken, agentToken] = await Promise.all([relay.token(session, 'user', 'user'), relay.token(session, 'agent', 'agent')]);
  const clients: LifelineSession[] = [];
  let closing = false;
  const close = (): void => {
    closing = true;
    for (const c of clients) c.close();
  };
  const watch = (s: LifelineSession, who: string): void => {
    clients.push(s);
    s.on('state', (c) => {
      if (closing || (c.state !== 'reconnecting' && c.state !== 'closed')) return;
      const why = c.mode ? ` (${c.mode}${c.reason ? `: ${c.reason}` : ''})` : '';
      opts.problems.add(`${who} ${c.state}${why}${c.error ? ` (${c.error})` : ''}`);
    });
    s.on('error', (err) => opts.problems.add(`${who} error ${err.code}`));
  };
  try {
    const user = await connect({
      url: relay.url,
      token: userToken,
      device: opts.userDevice,
      reconnect: policy(),
      ...(opts.userTransport ? { transport: opts.userTransport } : {}),
    });
    watch(user, 'user');
    const agent = await connect({
      url: relay.url,
      token: agentToken,
      device: opts.agentDevice,
      resume: 'now',
      echo: false,
      reconnect: policy(),
      ...(opts.maxOutbox !== undefined ? { maxOutbox: opts.maxOutbox } : {}),
    });
    watch(agent, 'agent');
    return {
      user,
      agent,
      get closing() {
        return closing;
      },
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}
