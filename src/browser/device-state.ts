import type { AppendFrame, TimelineEvent } from '../protocol/index.js';
import type { PendingAppends } from '../sdk/outbox.js';

/** An append as kept in Web Storage: a binary payload as base64. */
type StoredAppend = Omit<AppendFrame, 'bin'> & { bin?: string };

/**
 * What one tab remembers about one session across reloads: its device and producer ids, the
 * offset of the newest event it has handled, and (optionally) the events it has shown. The offset
 * and the events are written together, in one storage entry, so a reload resumes exactly after
 * the last event the page had: nothing missing, nothing twice.
 */
export interface DeviceSnapshot {
  v: 1;
  device: string;
  producer: string;
  /** Offset of the newest event handled (`-1` before any). */
  offset: string;
  /** Events kept for the page to show again after a reload (binary payloads are not kept). */
  history: TimelineEvent[];
  /** Appends not yet acknowledged when the snapshot was written: sent again after a reload. */
  pending?: { producer: string; epoch: number; appends: StoredAppend[] };
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function randomId(prefix: string): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function isSnapshot(v: unknown): v is DeviceSnapshot {
  if (!v || typeof v !== 'object') return false;
  const s = v as Partial<DeviceSnapshot>;
  return s.v === 1 && typeof s.device === 'string' && typeof s.producer === 'string' && typeof s.offset === 'string' && Array.isArray(s.history);
}

/**
 * A tab's memory of a session in Web Storage (`sessionStorage` by default: each tab is its own
 * device, and a reload of that tab is the same device). Writes are coalesced (at most one per
 * `writeDelayMs`) and flushed when the page is hidden or unloaded.
 */
export class DeviceState {
  readonly key: string;
  readonly #storage: Storage | undefined;
  readonly #historyLimit: number;
  readonly #writeDelayMs: number;
  #snapshot: DeviceSnapshot;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onHide = (): void => this.flush();

  constructor(opts: { sessionId: string; participant: string; storage: Storage | undefined; historyLimit: number; writeDelayMs?: number }) {
    this.key = `lifeline:${opts.sessionId}:${opts.participant}`;
    this.#storage = opts.storage;
    this.#historyLimit = opts.historyLimit;
    this.#writeDelayMs = opts.writeDelayMs ?? 50;
    let stored: unknown;
    try {
      const raw = this.#storage?.getItem(this.key);
      stored = raw ? JSON.parse(raw) : undefined;
    } catch {
      stored = undefined;
    }
    this.#snapshot = isSnapshot(stored) ? stored : { v: 1, device: randomId('tab-'), producer: '', offset: '-1', history: [] };
    if (!this.#snapshot.producer) this.#snapshot.producer = this.#snapshot.device;
    if (typeof addEventListener === 'function') {
      addEventListener('pagehide', this.#onHide);
      addEventListener('visibilitychange', this.#onHide);
    }
  }

  get device(): string {
    return this.#snapshot.device;
  }

  get producer(): string {
    return this.#snapshot.producer;
  }

  /** True when this tab had state for the session (a reload, or a return to the page). */
  get resumed(): boolean {
    return this.#snapshot.offset !== '-1' || this.#snapshot.history.length > 0;
  }

  get offset(): string {
    return this.#snapshot.offset;
  }

  get history(): readonly TimelineEvent[] {
    return this.#snapshot.history;
  }

  /** What the last instance of this tab left unacknowledged (see SessionOptions.outbox). */
  get pending(): PendingAppends | undefined {
    const p = this.#snapshot.pending;
    if (!p || !Array.isArray(p.appends) || p.appends.length === 0) return undefined;
    return { producer: p.producer, epoch: p.epoch, appends: p.appends.map(({ bin, ...frame }) => (bin !== undefined ? { ...frame, bin: fromBase64(bin) } : frame)) };
  }

  /**
   * Keeps the unacknowledged appends. A new one is written at once (a tab killed right after
   * sending must not lose it); acknowledgements alone with the next coalesced write.
   */
  setPending(pending: PendingAppends): void {
    const before = this.#snapshot.pending;
    const newest = (p: { epoch: number; appends: { producer: { seq: number } }[] } | undefined): [number, number] => [p?.epoch ?? -1, p?.appends.at(-1)?.producer.seq ?? -1];
    const [epochBefore, seqBefore] = newest(before);
    const [epochNow, seqNow] = newest(pending);
    // Something added since the last write (a higher seq, or a new epoch): write it now.
    const added = pending.appends.length > 0 && (epochNow !== epochBefore || seqNow > seqBefore);
    this.#snapshot.pending = {
      producer: pending.producer,
      epoch: pending.epoch,
      appends: pending.appends.map(({ bin, ...frame }) => (bin !== undefined ? { ...frame, bin: toBase64(bin) } : frame)),
    };
    if (added) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#writeDelayMs);
  }

  /** Records an event as handled; binary payloads are dropped from the kept copy. */
  handled(event: TimelineEvent): void {
    this.#snapshot.offset = event.offset;
    if (this.#historyLimit > 0 && event.kind !== 'audio.frame') {
      const { bin: _bin, ...kept } = event;
      this.#snapshot.history.push(kept);
      if (this.#snapshot.history.length > this.#historyLimit) this.#snapshot.history.splice(0, this.#snapshot.history.length - this.#historyLimit);
    }
    this.#timer ??= setTimeout(() => this.flush(), this.#writeDelayMs);
  }

  /** Writes the snapshot now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      this.#storage?.setItem(this.key, JSON.stringify(this.#snapshot));
    } catch {
      // Quota: keep the ids only. A reload then reads the whole timeline again from the relay,
      // which still shows every event once (an offset without its events would hide some).
      try {
        this.#storage?.setItem(this.key, JSON.stringify({ ...this.#snapshot, offset: '-1', history: [] }));
      } catch {
        // storage unavailable
      }
    }
  }

  /** Forgets the session (e.g. the user left it for good). */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#storage?.removeItem(this.key);
  }

  dispose(): void {
    this.flush();
    if (typeof removeEventListener === 'function') {
      removeEventListener('pagehide', this.#onHide);
      removeEventListener('visibilitychange', this.#onHide);
    }
  }
}
