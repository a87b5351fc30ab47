import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Json, Origin } from '../../src/protocol/index.js';
import { openStore } from '../../src/store/index.js';
import type { AppendEntry, Store } from '../../src/store/index.js';
import { parseConfig } from '../../src/relay/config.js';
import { MAX_UNSYNCED_EVENTS, RECOVERY_SEQ_SKIP, SqliteStore } from '../../src/store/sqlite-store.js';
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

/**
 * SqliteStores on files in a fresh directory per test; each is closed, and the directory removed,
 * when the test ends.
 */
function storeFiles(defaults: ConstructorParameters<typeof SqliteStore>[1] = {}): {
  readonly dir: string;
  open(file: string, opts?: ConstructorParameters<typeof SqliteStore>[1]): SqliteStore;
} {
  let dir = '';
  const opened: SqliteStore[] = [];
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    open(file, opts = {}) {
      const s = new SqliteStore(join(dir, file), { ...defaults, ...opts });
      opened.push(s);
      return s;
    },
  };
}

describe('SqliteStore background WAL checkpoints', () => {
  const files = storeFiles();
  const open = (opts: ConstructorParameters<typeof SqliteStore>[1] = {}): SqliteStore => files.open('wal.db', opts);
  const fill = async (store: SqliteStore, sessionId: string, n: number): Promise<void> => {
    await store.createSession({ id: sessionId, createdAt: 1, expiresAt: null, idleTtlMs: null, metadata: {} });
    for (let i = 0; i < n; i++) await store.append([text(sessionId, `t${i}`)]);
  };

  it('a worker thread copies the WAL into the database; the writer only keeps a far backstop', async () => {
    const store = open({ checkpointIntervalMs: 10 });
    expect(store.autoCheckpointPages).toBe(10_000);
    await fill(store, 's', 300);
    // vi.waitFor gives up after 1 s by default: too little for a worker thread to start (and load
    // better-sqlite3) and report on a loaded machine.
    await vi.waitFor(
      () => {
        const last = store.checkpointer?.lastCheckpoint;
        expect(last?.log).toBeGreaterThan(0);
        expect(last?.checkpointed).toBe(last?.log);
      },
      { timeout: 10_000, interval: 20 },
    );
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

describe('SqliteStore durability in normal mode (the default)', () => {
  const files = storeFiles({ checkpoints: 'inline' });
  const open = files.open;
  const session = (store: SqliteStore, id: string): Promise<void> =>
    store.createSession({ id, createdAt: 1, expiresAt: null, idleTtlMs: null, metadata: {} });
  const walSize = (file: string): number => statSync(join(files.dir, `${file}-wal`)).size;
  /**
   * The files as a machine would find them after losing power: the database file as it is and the
   * WAL cut to `walBytes` (what had been fsynced); the shared-memory index is gone.
   */
  const crashCopy = (from: string, to: string, walBytes?: number): void => {
    copyFileSync(join(files.dir, from), join(files.dir, to));
    const wal = readFileSync(join(files.dir, `${from}-wal`));
    writeFileSync(join(files.dir, `${to}-wal`), walBytes === undefined ? wal : wal.subarray(0, walBytes));
  };
  const texts = async (store: SqliteStore, id: string, after = 0): Promise<string[]> =>
    (await store.read(id, after, 100)).map((e) => (e.data as { text: string }).text);

  it('is the default of the store, of openStore and of the relay', async () => {
    expect(open('a.db').synchronous).toBe('normal');
    const viaOpen = await openStore(`sqlite:${join(files.dir, 'b.db')}`);
    expect((viaOpen as SqliteStore).synchronous).toBe('normal');
    await viaOpen.close();
    expect(parseConfig({ secret: 'test-secret-test-secret-test-secret' }).sqliteSync).toBe('normal');
  });

  it('appends go without an fsync of their own, but never more than MAX_UNSYNCED_EVENTS of them', async () => {
    const store = open('a.db');
    await session(store, 's');
    expect(store.unsyncedAppends).toEqual({ events: 0, forcedSyncs: 0 });
    const batch = (n: number, from: number): AppendEntry[] => Array.from({ length: n }, (_, i) => text('s', `t${from + i}`));
    for (let i = 0; i < MAX_UNSYNCED_EVENTS / 1000; i++) await store.append(batch(1000, i * 1000));
    expect(store.unsyncedAppends).toEqual({ events: MAX_UNSYNCED_EVENTS, forcedSyncs: 0 });
    // The next append would pass the bound: it commits with an fsync, which covers all before it.
    await store.append(batch(1, MAX_UNSYNCED_EVENTS));
    expect(store.unsyncedAppends).toEqual({ events: 0, forcedSyncs: 1 });
    await store.append(batch(3, MAX_UNSYNCED_EVENTS + 1));
    expect(store.unsyncedAppends.events).toBe(3);
    // Sessions, leases and the like always fsync, and so make every append before them durable.
    await session(store, 'other');
    expect(store.unsyncedAppends.events).toBe(0);
    expect(await store.head('s')).toBe(MAX_UNSYNCED_EVENTS + 4);
    // In full mode every commit fsyncs: nothing is ever counted.
    const full = open('full.db', { synchronous: 'full' });
    await session(full, 's');
    await full.append(batch(5, 0));
    expect(full.unsyncedAppends).toEqual({ events: 0, forcedSyncs: 0 });
  });

  it('after a power cut the unsynced appends are gone, and no offset or producer position is handed out twice', async () => {
    const before = open('live.db', { bootId: 'boot-1' });
    await session(before, 's');
    const p = (seq: number, t: string): AppendEntry => text('s', t, { id: 'agent', epoch: 1, seq });
    await before.append([p(0, 'a'), p(1, 'b')]);
    await session(before, 'marker'); // fsyncs: a and b are on disk now
    const synced = walSize('live.db');
    for (const [i, t] of ['c', 'd', 'e'].entries()) expect(await before.append([p(2 + i, t)])).toEqual([{ status: 'appended', seq: 3 + i }]);
    const seenByReader = 5; // a reader had c, d and e, up to offset 5
    expect(walSize('live.db')).toBeGreaterThan(synced);
    crashCopy('live.db', 'after.db', synced); // the machine lost power: before never closed

    const after = open('after.db', { bootId: 'boot-2' });
    expect(after.recoveredFromPossibleLoss).toBe(true);
    expect(await texts(after, 's')).toEqual(['a', 'b']);
    expect(await after.getSession('marker')).toBeDefined();
    // Offsets 3–5 were seen and lost: the timeline moved past them, so none is reused.
    expect(await after.head('s')).toBe(2 + RECOVERY_SEQ_SKIP);
    expect(RECOVERY_SEQ_SKIP).toBeGreaterThan(MAX_UNSYNCED_EVENTS);
    // The agent was acknowledged up to seq 4; it goes on with 5, and that is accepted once.
    expect(await after.append([p(5, 'f')])).toEqual([{ status: 'appended', seq: 3 + RECOVERY_SEQ_SKIP }]);
    expect(await texts(after, 's', seenByReader)).toEqual(['f']);
    // Its durable retries are still recognised, and the usual rules apply again from here.
    expect(await after.append([p(1, 'b')])).toEqual([{ status: 'duplicate', seq: 2 }]);
    expect(await after.append([p(6, 'g')])).toEqual([{ status: 'appended', seq: 4 + RECOVERY_SEQ_SKIP }]);
    expect((await after.append([p(9, 'x')]))[0]).toMatchObject({ status: 'rejected', code: 'SEQUENCE_GAP' });
    // Recovered once: a clean stop and another restart skip nothing more.
    await after.close();
    const later = open('after.db', { bootId: 'boot-3' });
    expect(later.recoveredFromPossibleLoss).toBe(false);
    expect(await later.head('s')).toBe(4 + RECOVERY_SEQ_SKIP);
  });

  it('a store that closes does not hide another one still open on the same file', async () => {
    const first = open('live.db', { bootId: 'boot-1' });
    const second = open('live.db', { bootId: 'boot-1' });
    await session(first, 's');
    await first.close();
    const synced = walSize('live.db');
    await second.append([text('s', 'unsynced')]);
    crashCopy('live.db', 'after.db', synced);
    const after = open('after.db', { bootId: 'boot-2' });
    expect(after.recoveredFromPossibleLoss).toBe(true);
    expect(await after.head('s')).toBe(RECOVERY_SEQ_SKIP);
  });

  it('a killed process loses nothing, and the next run on the same boot skips nothing', async () => {
    const before = open('live.db', { bootId: 'boot-1' });
    await session(before, 's');
    for (const t of ['a', 'b', 'c']) await before.append([text('s', t)]);
    // The process died; the OS kept every page it had written, so the WAL is whole.
    crashCopy('live.db', 'after.db');
    const after = open('after.db', { bootId: 'boot-1' });
    expect(after.recoveredFromPossibleLoss).toBe(false);
    expect(await after.head('s')).toBe(3);
    expect(await texts(after, 's')).toEqual(['a', 'b', 'c']);
    // Without a boot id nothing can tell a killed process from a power cut: it skips, to be safe.
    crashCopy('live.db', 'unknown.db');
    const unknown = open('unknown.db', { bootId: null });
    expect(unknown.recoveredFromPossibleLoss).toBe(true);
    expect(await texts(unknown, 's')).toEqual(['a', 'b', 'c']);
    expect(await unknown.head('s')).toBe(3 + RECOVERY_SEQ_SKIP);
  });

  it('a clean close, or a run in full mode, leaves nothing to recover after a restart', async () => {
    const closed = open('closed.db', { bootId: 'boot-1' });
    await session(closed, 's');
    await closed.append([text('s', 'a')]);
    await closed.close();
    const reopened = open('closed.db', { bootId: 'boot-2' });
    expect(reopened.recoveredFromPossibleLoss).toBe(false);
    expect(await reopened.head('s')).toBe(1);

    const full = open('full.db', { bootId: 'boot-1', synchronous: 'full' });
    await session(full, 's');
    await full.append([text('s', 'a')]);
    crashCopy('full.db', 'full-after.db', walSize('full.db'));
    const fullAfter = open('full-after.db', { bootId: 'boot-2' });
    expect(fullAfter.recoveredFromPossibleLoss).toBe(false);
    expect(await fullAfter.head('s')).toBe(1);
  });
});
