import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ANY_SESSION, mintToken } from '../../src/protocol/index.js';
import { createRelay } from '../../src/relay/index.js';
import type { Relay, RelayConfigInput } from '../../src/relay/index.js';

export const SECRET = 'test-secret-0123456789abcdef';

export interface TestRelay {
  relay: Relay;
  url: string;
  adminToken: string;
  createSession(body?: Record<string, unknown>): Promise<string>;
  token(session: string, participant: string, role: 'user' | 'agent', ttlSeconds?: number): Promise<string>;
  close(): Promise<void>;
}

/** An in-process relay on 127.0.0.1, a port of its own choosing, memory store unless told. */
export async function startRelay(config: Partial<RelayConfigInput> = {}): Promise<TestRelay> {
  // Presence events are off unless a suite asks for them: most suites assert exact offsets and
  // heads, which every connect and disconnect would otherwise move. Presence suites turn them on.
  const relay = await createRelay({ host: '127.0.0.1', port: 0, store: 'memory', secret: SECRET, logLevel: 'silent', presenceEvents: false, ...config });
  const url = await relay.listen();
  const adminToken = await mintToken(SECRET, { session: ANY_SESSION, participant: 'admin', role: 'admin' });
  return {
    relay,
    url,
    adminToken,
    async createSession(body = {}) {
      const res = await fetch(`${url}/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status !== 201) throw new Error(`create session: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { id: string }).id;
    },
    token: (session, participant, role, ttlSeconds) => mintToken(SECRET, { session, participant, role, ...(ttlSeconds ? { ttlSeconds } : {}) }),
    close: () => relay.close(),
  };
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix = 'lifeline-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
