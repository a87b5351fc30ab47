/**
 * Where the examples find the relay and its secret: LIFELINE_URL (default http://127.0.0.1:8787)
 * and LIFELINE_SECRET, else the secret `lifeline serve` keeps beside its default SQLite store
 * (./data/secret), so the examples work against `npm start` with no setup.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ANY_SESSION, mintToken } from '../src/sdk/index.js';

export const RELAY_URL = process.env['LIFELINE_URL'] ?? 'http://127.0.0.1:8787';

export function relaySecret(): string {
  const fromEnv = process.env['LIFELINE_SECRET'];
  if (fromEnv) return fromEnv;
  const file = process.env['LIFELINE_SECRET_FILE'] ?? 'data/secret';
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  throw new Error('set LIFELINE_SECRET (or start the relay with `npm start`, which keeps it in data/secret)');
}

export function adminToken(secret = relaySecret()): Promise<string> {
  return mintToken(secret, { session: ANY_SESSION, participant: 'admin', role: 'admin', ttlSeconds: 3600 });
}

/** Creates a session (optionally handed to an agent worker role) and returns its id. */
export async function createSession(url: string, admin: string, agentRole?: string): Promise<string> {
  const res = await fetch(new URL('/v1/sessions', url), {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify(agentRole ? { agent: { role: agentRole } } : {}),
  });
  if (res.status !== 201) throw new Error(`create session: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}
