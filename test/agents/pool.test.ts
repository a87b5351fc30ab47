import { afterEach, describe, expect, it } from 'vitest';
import { ANY_SESSION, AgentWorker, mintToken } from '../../src/sdk/index.js';
import { SECRET, startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

describe('worker pool', () => {
  let r: TestRelay | undefined;
  const closers: (() => void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    await r?.close();
  });

  it('a deleted session frees its worker slot (no re-assignment of a session that is gone)', async () => {
    r = await startRelay({ leaseTtlMs: 200 });
    const relay = r;
    const jobs: string[] = [];
    const token = await mintToken(SECRET, { session: ANY_SESSION, participant: 'solo', role: 'agent' });
    const worker = await AgentWorker.start({
      url: relay.url,
      token,
      id: 'solo',
      roles: ['assistant'],
      capacity: 1,
      handle: async (job) => {
        jobs.push(job.sessionId);
        for await (const e of job.session.stream) void e; // until the session ends
      },
    });
    closers.push(() => worker.close());
    const create = async (): Promise<string> => {
      const res = await fetch(`${relay.url}/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${relay.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: { role: 'assistant' } }),
      });
      return ((await res.json()) as { id: string }).id;
    };
    const a = await create();
    await waitFor(() => jobs.includes(a), { message: 'first session taken' });
    const del = await fetch(`${relay.url}/v1/sessions/${a}`, { method: 'DELETE', headers: { authorization: `Bearer ${relay.adminToken}` } });
    expect(del.status).toBe(204);
    // Past the lease TTL: the deleted session must not come back as an "expired" assignment.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const b = await create();
    await waitFor(() => jobs.includes(b), { message: 'second session taken by the freed worker' });
    expect(jobs.filter((j) => j === a)).toHaveLength(1);
    expect(relay.relay.workers.queued).toBe(0);
  });
});
