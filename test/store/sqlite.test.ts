import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Json, Origin } from '../../src/protocol/index.js';
import { openStore } from '../../src/store/index.js';
import type { AppendEntry, Store } from '../../src/store/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { runStoreContract } from './contract.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'lifeline-sqlite-'));
}

runStoreContract('sqlite', async () => {
  const dir = tempDir();
  const spec = `sqlite:${join(dir, 'store.db')}`;
  const opened: Store[] = [];
  const openOne = async (): Promise<Store> => {
    const s = await openStore(spec);
    opened.push(s);
    return s;
  };
  return {
    store: await openOne(),
    reopen: openOne,
    cleanup: async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const ORIGIN: Origin = { participant: 'alice', device: 'd1', role: 'user' };

function text(sessionId: string, t: string, producer?: { id: string; epoch: number; seq: number }): AppendEntry {
  return { sessionId, ...(producer ? { producer } : {}), event: { ts: 1, from: ORIGIN, kind: 'text.delta', data: { text: t } } };
}

describe('SqliteStore specifics', () => {
  let dir: string;
  let path: string;
  const opened: Store[] = [];
  const open = async (): Promise<Store> => {
    const s = await openStore(`sqlite:${path}`);
    opened.push(s);
    return s;
  };

  beforeEach(() => {
    dir = tempDir();
    path = join(dir, 'nested', 'deeper', 'store.db');
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('openStore("sqlite:PATH") creates the file (and its directories) and is a SqliteStore', async () => {
    const store = await open();
    expect(store.kind).toBe('sqlite');
    expect(store).toBeInstanceOf(SqliteStore);
    expect((store as SqliteStore).path).toBe(path);
    expect(existsSync(path)).toBe(true);
  });

  it('close is idempotent', async () => {
    const store = await open();
    await store.close();
    await store.close();
  });

  it('a batch is atomic: a failure mid-batch commits none of it', async () => {
    const store = await open();
    await store.createSession({ id: 'a', createdAt: 0, expiresAt: null, metadata: {} });
    await store.createSession({ id: 'b', createdAt: 0, expiresAt: null, metadata: {} });
    await store.append([text('a', 'kept', { id: 'p', epoch: 0, seq: 0 })]);

    // A BigInt cannot be serialised to JSON: the third entry throws inside the transaction, after
    // the first two have written their events, heads and producer state.
    const poisoned: AppendEntry = { ...text('b', 'x'), event: { ...text('b', 'x').event, data: { n: 1n } as unknown as Json } };
    await expect(
      store.append([text('a', 'lost-a', { id: 'p', epoch: 0, seq: 1 }), text('b', 'lost-b', { id: 'q', epoch: 0, seq: 0 }), poisoned]),
    ).rejects.toThrow(/BigInt/);

    const check = async (s: Store): Promise<void> => {
      expect(await s.head('a')).toBe(1);
      expect(await s.head('b')).toBe(0);
      expect((await s.read('a', 0, 10)).map((e) => (e.data as { text: string }).text)).toEqual(['kept']);
      expect(await s.read('b', 0, 10)).toEqual([]);
      expect(await s.producer('a', 'p')).toEqual({ id: 'p', epoch: 0, seq: 0 });
      expect(await s.producer('b', 'q')).toBeUndefined();
    };
    await check(store);
    // The store stays usable, and the same appends now go through with the seqs they would have had.
    expect(await store.append([text('a', 'a2', { id: 'p', epoch: 0, seq: 1 }), text('b', 'b1', { id: 'q', epoch: 0, seq: 0 })])).toEqual([
      { status: 'appended', seq: 2 },
      { status: 'appended', seq: 1 },
    ]);
    await store.close();
    const again = await open();
    expect(await again.head('a')).toBe(2);
    expect(await again.head('b')).toBe(1);
  });

  it('two stores on one file never hand out one seq twice', async () => {
    const one = await open();
    const two = await open();
    await one.createSession({ id: 's', createdAt: 0, expiresAt: null, metadata: {} });
    const seqs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const [x, y] = await Promise.all([one.append([text('s', `one${i}`)]), two.append([text('s', `two${i}`), text('s', `two${i}b`)])]);
      for (const o of [...x, ...y]) if (o.status === 'appended') seqs.push(o.seq);
    }
    expect(seqs).toHaveLength(60);
    expect([...seqs].sort((p, q) => p - q)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(await one.head('s')).toBe(60);
    expect(await two.head('s')).toBe(60);
    expect((await two.read('s', 0, 100)).map((e) => e.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  });

  it('producer state is shared between two stores on one file', async () => {
    const one = await open();
    const two = await open();
    await one.createSession({ id: 's', createdAt: 0, expiresAt: null, metadata: {} });
    expect(await one.append([text('s', 'a', { id: 'p', epoch: 0, seq: 0 })])).toEqual([{ status: 'appended', seq: 1 }]);
    expect(await two.append([text('s', 'a', { id: 'p', epoch: 0, seq: 0 })])).toEqual([{ status: 'duplicate', seq: 1 }]);
    expect(await two.append([text('s', 'b', { id: 'p', epoch: 1, seq: 0 })])).toEqual([{ status: 'appended', seq: 2 }]);
    expect(await one.append([text('s', 'c', { id: 'p', epoch: 0, seq: 1 })])).toEqual([
      { status: 'rejected', code: 'STALE_EPOCH', current: { id: 'p', epoch: 1, seq: 0 } },
    ]);
  });
});

describe('SqliteStore background WAL checkpoints', () => {
  let dir: string;
  const opened: SqliteStore[] = [];
  const open = (opts: ConstructorParameters<typeof SqliteStore>[1] = {}): SqliteStore => {
    const s = new SqliteStore(join(dir, 'wal.db'), opts);
    opened.push(s);
    return s;
  };
  const fill = async (store: SqliteStore, sessionId: string, n: number): Promise<void> => {
    await store.createSession({ id: sessionId, createdAt: 1, expiresAt: null, idleTtlMs: null, metadata: {} });
    for (let i = 0; i < n; i++) await store.append([text(sessionId, `t${i}`)]);
  };

  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a worker thread copies the WAL into the database; the writer only keeps a far backstop', async () => {
    const store = open({ checkpointIntervalMs: 10 });
    expect(store.autoCheckpointPages).toBe(10_000);
    await fill(store, 's', 300);
    await vi.waitFor(() => {
      const last = store.checkpointer?.lastCheckpoint;
      expect(last?.log).toBeGreaterThan(0);
      expect(last?.checkpointed).toBe(last?.log);
    });
    expect(store.checkpointer?.checkpoints).toBeGreaterThan(0);
    // Nothing was lost on the way: the events read back whole, and again from a reopened file.
    expect((await store.read('s', 0, 1000)).map((e) => (e.data as { text: string }).text)).toEqual(
      Array.from({ length: 300 }, (_, i) => `t${i}`),
    );
    await store.close();
    const again = open({ checkpoints: 'inline' });
    expect(await again.head('s')).toBe(300);
  });

  it('close ends the worker thread (no thread outlives the store)', async () => {
    const store = open();
    const checkpointer = store.checkpointer;
    expect(checkpointer?.threadId).toBeGreaterThan(0);
    await store.close();
    expect(checkpointer?.threadId).toBe(-1);
    await store.close();
  });

  it('a dead worker is reported and the writer checkpoints inline again', async () => {
    const failures: Error[] = [];
    const store = open({ onCheckpointFailure: (err) => failures.push(err) });
    await store.checkpointer?.kill();
    await vi.waitFor(() => expect(failures).toHaveLength(1));
    expect(store.autoCheckpointPages).toBe(1000);
    await fill(store, 's', 10);
    expect(await store.head('s')).toBe(10);
  });

  it('inline mode and :memory: run no worker', async () => {
    const inline = open({ checkpoints: 'inline' });
    expect(inline.checkpointer).toBeUndefined();
    expect(inline.autoCheckpointPages).toBe(1000);
    const mem = new SqliteStore(':memory:');
    expect(mem.checkpointer).toBeUndefined();
    await mem.close();
  });
});
