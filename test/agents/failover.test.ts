import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ANY_SESSION, connect, mintToken } from '../../src/sdk/index.js';
import type { LifelineSession, PresenceChange, TimelineEvent } from '../../src/sdk/index.js';
import { SECRET, startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOKENS = 40;

interface WorkerProcess {
  id: string;
  child: ChildProcess;
  lines: Record<string, unknown>[];
}

/**
 * Agent workers as real processes (native-free-bench/agents/answer-worker.ts), killed with SIGKILL or frozen
 * with SIGSTOP while they stream an answer. Leases expire after 500 ms; the relay hands the
 * session to the other worker, which finishes the turn from the committed cursor.
 */
describe('agents that survive crashes', () => {
  let r: TestRelay;
  const workers: WorkerProcess[] = [];
  const sessions: LifelineSession[] = [];

  beforeEach(async () => {
    r = await startRelay({ presenceEvents: true, leaseTtlMs: 500, heartbeatMs: 100, presenceGraceMs: 1000 });
  });
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close();
    for (const w of workers.splice(0)) {
      if (w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill('SIGCONT');
        w.child.kill('SIGKILL');
      }
    }
    await r.close();
  });

  async function startWorker(id: string): Promise<WorkerProcess> {
    const token = await mintToken(SECRET, { session: ANY_SESSION, participant: id, role: 'agent' });
    const child = spawn(process.execPath, ['--import', 'tsx', 'native-free-bench/agents/answer-worker.ts'], {
      cwd: ROOT,
      env: { ...process.env, RELAY_URL: r.url, WORKER_TOKEN: token, WORKER_ID: id, ANSWER_TOKENS: String(TOKENS), TOKEN_MS: '25' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const w: WorkerProcess = { id, child, lines: [] };
    workers.push(w);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        w.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not ours
      }
    });
    await waitFor(() => w.lines.some((l) => l['ready'] === id), { timeoutMs: 20_000, message: `${id} ready` });
    return w;
  }

  async function userOf(sid: string): Promise<{ s: LifelineSession; events: TimelineEvent[]; presence: PresenceChange[] }> {
    const s = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user'), device: 'phone' });
    sessions.push(s);
    const events: TimelineEvent[] = [];
    const presence: PresenceChange[] = [];
    void (async () => {
      for await (const e of s.stream) events.push(e);
    })();
    s.onPresenceChange((c) => presence.push(c));
    return { s, events, presence };
  }

  const answers = (events: TimelineEvent[], q: number): string[] =>
    events.filter((e) => e.kind === 'text.delta' && e.from.role === 'agent').map((e) => (e.data as { text: string }).text).filter((t) => t.startsWith(`a${q}.`));
  const expected = (q: number): string[] => Array.from({ length: TOKENS }, (_, k) => `a${q}.${k}`);

  async function createWithAgent(): Promise<string> {
    const res = await fetch(`${r.url}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${r.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: { role: 'assistant' } }),
    });
    return ((await res.json()) as { id: string }).id;
  }

  const holderOf = (ws: WorkerProcess[], sid: string): WorkerProcess | undefined => ws.find((w) => w.lines.some((l) => l['job'] === sid));

  it('kill -9 mid-answer: the other worker finishes the turn; the user sees each token once; presence shows the agent away and back', async () => {
    const ws = [await startWorker('worker-1'), await startWorker('worker-2')];
    const sid = await createWithAgent();
    const user = await userOf(sid);
    await waitFor(() => holderOf(ws, sid), { message: 'session assigned' }).catch((err: unknown) => {
      throw new Error(`${String(err)}; workers said: ${JSON.stringify(ws.map((w) => w.lines))}`);
    });
    const first = holderOf(ws, sid)!;
    const other = ws.find((w) => w !== first)!;
    await user.s.sendText('q1');
    await waitFor(() => answers(user.events, 1).length >= 10, { message: 'answer under way' });
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(() => other.lines.some((l) => l['job'] === sid && l['reason'] === 'expired'), { timeoutMs: 10_000, message: 'handed over' });
    const handedOverMs = Date.now() - killedAt;
    await waitFor(() => answers(user.events, 1).length >= TOKENS, { timeoutMs: 15_000, message: 'turn finished' });
    expect(answers(user.events, 1)).toEqual(expected(1));
    const job = other.lines.find((l) => l['job'] === sid)!;
    expect(job['epoch']).toBe(2);
    // The replacement keeps serving the session.
    await user.s.sendText('q2');
    await waitFor(() => answers(user.events, 2).length >= TOKENS, { timeoutMs: 15_000, message: 'next turn' });
    expect(answers(user.events, 2)).toEqual(expected(2));
    // Presence, in timeline order: the dead worker away, then the new one here.
    const trail = user.presence.filter((c) => c.role === 'agent').map((c) => `${c.participant}:${c.state}`);
    const away = trail.indexOf(`${first.id}:reconnecting`);
    const back = trail.lastIndexOf(`${other.id}:connected`);
    expect(away).toBeGreaterThanOrEqual(0);
    expect(back).toBeGreaterThan(away);
    expect(handedOverMs).toBeLessThan(5000);
  });

  it('a frozen worker that comes back is fenced: its late appends are refused and appear nowhere', async () => {
    const ws = [await startWorker('worker-1'), await startWorker('worker-2')];
    const sid = await createWithAgent();
    const user = await userOf(sid);
    await waitFor(() => holderOf(ws, sid));
    const first = holderOf(ws, sid)!;
    const other = ws.find((w) => w !== first)!;
    await user.s.sendText('q1');
    await waitFor(() => answers(user.events, 1).length >= 8);
    first.child.kill('SIGSTOP');
    await waitFor(() => other.lines.some((l) => l['job'] === sid), { timeoutMs: 10_000, message: 'handed over' });
    await waitFor(() => answers(user.events, 1).length >= TOKENS, { timeoutMs: 15_000 });
    first.child.kill('SIGCONT');
    // Let the zombie run: whatever it still tries to append must be refused.
    await waitFor(() => first.lines.some((l) => l['code'] === 'STALE_EPOCH' || l['code'] === 'NOT_LEASE_HOLDER'), {
      timeoutMs: 10_000,
      message: 'zombie refused',
    }).catch((err: unknown) => {
      throw new Error(`${String(err)}; zombie said: ${JSON.stringify(first.lines.slice(-6))}`);
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(answers(user.events, 1)).toEqual(expected(1));
    const takeover = user.events.find((e) => e.kind === 'control' && (e.data as { worker?: string }).worker === other.id)!;
    const lateFromZombie = user.events.filter((e) => e.from.participant === first.id && e.offset > takeover.offset);
    expect(lateFromZombie).toEqual([]);
    // The head is the relay's; the user's copy of the newest events (e.g. the zombie's presence as
    // its session closes) travels the user's own socket: wait for it to catch up rather than race.
    await waitFor(async () => Number(user.s.lastOffset) === (await r.relay.timeline.head(sid)), {
      timeoutMs: 5000,
      message: 'the user has every event up to the head',
    });
  });
});
