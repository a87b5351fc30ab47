import { afterEach, describe, expect, it } from 'vitest';
import { ANY_SESSION, AgentWorker, connect, mintToken } from '../../src/sdk/index.js';
import type { AgentJob, LifelineSession, TimelineEvent } from '../../src/sdk/index.js';
import { SECRET, startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

describe('handoff between agents', () => {
  let r: TestRelay | undefined;
  const closers: (() => void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    await r?.close();
  });

  it('moves the session to a named worker without a gap; the new holder starts from the committed cursor with the context', async () => {
    r = await startRelay({ leaseTtlMs: 500 });
    const relay = r;
    const jobs: { worker: string; job: AgentJob }[] = [];
    const start = async (id: string, handle: (job: AgentJob) => Promise<void>): Promise<void> => {
      const token = await mintToken(SECRET, { session: ANY_SESSION, participant: id, role: 'agent' });
      const w = await AgentWorker.start({ url: relay.url, token, id, roles: ['assistant'], handle: async (job) => {
        jobs.push({ worker: id, job });
        await handle(job);
      } });
      closers.push(() => w.close());
    };
    // triage answers the first question, commits, then hands over to the specialist.
    await start('triage', async (job) => {
      await job.session.setPresence('thinking');
      for await (const e of job.session.stream) {
        if (e.kind === 'text.delta' && e.from.role === 'user') {
          const said = await job.session.sendText(`triage saw "${(e.data as { text: string }).text}"`);
          job.commit(said);
          await job.handoff('specialist', { summary: 'user needs a specialist' });
          return;
        }
      }
    });
    const seenBySpecialist: TimelineEvent[] = [];
    await start('specialist', async (job) => {
      for await (const e of job.session.stream) {
        seenBySpecialist.push(e);
        if (e.kind === 'text.delta' && e.from.role === 'user' && (e.data as { text: string }).text === 'second') {
          await job.session.sendText('specialist here');
          return;
        }
      }
    });
    const res = await fetch(`${relay.url}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${relay.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: { role: 'assistant' } }),
    });
    const sid = ((await res.json()) as { id: string }).id;
    const user: LifelineSession = await connect({ url: relay.url, token: await relay.token(sid, 'alice', 'user') });
    closers.push(() => user.close());
    const events: TimelineEvent[] = [];
    void (async () => {
      for await (const e of user.stream) events.push(e);
    })();
    await waitFor(() => jobs.some((j) => j.worker === 'triage'), { message: 'triage has the session' });
    await user.sendText('first');
    await waitFor(() => jobs.some((j) => j.worker === 'specialist'), { message: 'handed off' });
    const handed = jobs.find((j) => j.worker === 'specialist')!.job;
    expect(handed.reason).toBe('handoff');
    expect(handed.from).toBe('triage');
    expect(handed.context).toEqual({ summary: 'user needs a specialist' });
    expect(handed.lease.epoch).toBe(2);
    await user.sendText('second');
    await waitFor(() => events.some((e) => (e.data as { text?: string }).text === 'specialist here'), { message: 'specialist answers' });
    // The specialist read from triage's commit: not the first question again, but everything after.
    const texts = seenBySpecialist.filter((e) => e.kind === 'text.delta').map((e) => (e.data as { text: string }).text);
    expect(texts).not.toContain('first');
    expect(texts).toContain('second');
    const handoffMark = events.find((e) => e.kind === 'control' && (e.data as { action?: string }).action === 'handoff');
    expect(handoffMark?.data).toMatchObject({ role: 'assistant', from: 'triage', to: 'specialist' });
    // The agent's own state is a presence event from the agent.
    expect(events.some((e) => e.kind === 'presence' && e.from.participant === 'triage' && (e.data as { state: string }).state === 'thinking')).toBe(true);
    // One ordered timeline: triage's answer, the handoff mark, then the specialist's.
    const order = events.map((e) => (e.kind === 'control' ? 'handoff' : ((e.data as { text?: string }).text ?? e.kind)));
    expect(order.indexOf('triage saw "first"')).toBeLessThan(order.indexOf('handoff'));
    expect(order.indexOf('handoff')).toBeLessThan(order.indexOf('specialist here'));
  });

  it('a handoff to a worker that never registers goes to another worker after handoffWaitMs, with the context', async () => {
    r = await startRelay({ leaseTtlMs: 300, handoffWaitMs: 300 });
    const relay = r;
    const jobs: { worker: string; job: AgentJob }[] = [];
    const start = async (id: string, handle: (job: AgentJob) => Promise<void>): Promise<void> => {
      const token = await mintToken(SECRET, { session: ANY_SESSION, participant: id, role: 'agent' });
      const w = await AgentWorker.start({ url: relay.url, token, id, roles: ['assistant'], handle: async (job) => {
        jobs.push({ worker: id, job });
        await handle(job);
      } });
      closers.push(() => w.close());
    };
    await start('triage', async (job) => {
      await job.handoff('ghost', { summary: 'for a worker that never comes' });
    });
    const res = await fetch(`${relay.url}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${relay.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: { role: 'assistant' } }),
    });
    const sid = ((await res.json()) as { id: string }).id;
    await waitFor(() => jobs.some((j) => j.worker === 'triage'), { message: 'triage has the session' });
    // While the handoff waits for "ghost", the session sits in the queue.
    await waitFor(() => relay.relay.workers.queued === 1, { message: 'handoff queued for ghost' });
    await start('backup', async () => {});
    await waitFor(() => jobs.some((j) => j.worker === 'backup'), { message: 'backup takes the session once the wait is over' });
    const taken = jobs.find((j) => j.worker === 'backup')!.job;
    expect(taken.sessionId).toBe(sid);
    expect(taken.reason).toBe('handoff');
    expect(taken.from).toBe('triage');
    expect(taken.context).toEqual({ summary: 'for a worker that never comes' });
    expect(relay.relay.workers.queued).toBe(0);
  });
});
