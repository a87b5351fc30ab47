import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { RELAY_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { ANY_SESSION, mintToken } from '../../src/protocol/index.js';
import { COMPILED, modulePath, startChild, tempDir } from './children.js';
import type { ChildServer } from './children.js';

export type StoreKind = 'memory' | 'sqlite';

export interface RelayLaunchOptions {
  store: StoreKind;
  /** SQLite fsync policy (default `full`, the relay's own default). */
  sqliteSync?: 'full' | 'normal';
  /** Extra `lifeline serve` flags, e.g. ['--window', '1024']. */
  extraArgs?: string[];
  /** Extra flags for the relay's node process, e.g. ['--cpu-prof', '--cpu-prof-dir', DIR]. */
  nodeFlags?: string[];
  /** Leave out RELAY_NODE_FLAGS (the V8 flags `npm start` runs the relay with). */
  plainNode?: boolean;
}

/** A relay running as a child process on 127.0.0.1, with what a scenario needs to use it. */
export interface RelayUnderTest {
  readonly url: string;
  readonly store: StoreKind;
  readonly sqliteSync: 'full' | 'normal' | undefined;
  /** `source (tsx)` or `dist`: which build of the relay runs. */
  readonly build: string;
  /** The V8/Node flags the relay process runs with. */
  readonly nodeFlags: readonly string[];
  readonly child: ChildServer;
  /** Creates a session through the HTTP API (admin token); resolves with its id. */
  createSession(body?: Record<string, unknown>): Promise<string>;
  token(session: string, participant: string, role: 'user' | 'agent', ttlSeconds?: number): Promise<string>;
  /** Stops the child (SIGTERM, then SIGKILL) and removes its SQLite file. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `lifeline serve --port 0` as a child process — from dist/ when the harness itself runs
 * compiled, else from the TypeScript sources through tsx — with a random secret and, for sqlite,
 * a database in a fresh temporary directory.
 */
export async function launchRelay(opts: RelayLaunchOptions): Promise<RelayUnderTest> {
  const secret = randomBytes(24).toString('hex');
  const tmp = opts.store === 'sqlite' ? tempDir('lifeline-bench-') : undefined;
  const sqliteSync = opts.store === 'sqlite' ? (opts.sqliteSync ?? 'normal') : undefined;
  const storeSpec = tmp ? `sqlite:${join(tmp.dir, 'bench.db')}` : 'memory';
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--store', storeSpec, '--secret', secret, '--log-level', 'error'];
  if (sqliteSync) args.push('--sqlite-sync', sqliteSync);
  args.push(...(opts.extraArgs ?? []));
  // The relay runs as `npm start` runs it: with RELAY_NODE_FLAGS, unless asked otherwise.
  const nodeFlags = [...(opts.plainNode ? [] : RELAY_NODE_FLAGS), ...(opts.nodeFlags ?? [])];
  let child: ChildServer;
  try {
    child = await startChild({ name: 'relay', script: modulePath('src/cli/main'), args, nodeFlags });
  } catch (err) {
    tmp?.remove();
    throw err;
  }
  const adminToken = await mintToken(secret, { session: ANY_SESSION, participant: 'bench-admin', role: 'admin', ttlSeconds: 3600 });
  let stopped: Promise<void> | undefined;
  return {
    url: child.url,
    store: opts.store,
    sqliteSync,
    build: COMPILED ? 'dist' : 'source (tsx)',
    nodeFlags,
    child,
    async createSession(body = {}) {
      const res = await fetch(`${child.url}/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status !== 201) throw new Error(`create session: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
      return ((await res.json()) as { id: string }).id;
    },
    token: (session, participant, role, ttlSeconds = 3600) => mintToken(secret, { session, participant, role, ttlSeconds }),
    stop() {
      stopped ??= child.stop().finally(() => tmp?.remove());
      return stopped;
    },
  };
}
