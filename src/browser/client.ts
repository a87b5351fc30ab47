import { LifelineError, asPresenceChange } from '../protocol/index.js';
import type { EventBody, EventKind, Json, PresenceChange, TimelineEvent, Origin } from '../protocol/index.js';
import type { ClientTransport } from '../sdk/client-transport.js';
import { Emitter } from '../sdk/emitter.js';
import { LifelineSession } from '../sdk/session.js';
import type { StateChange } from '../sdk/session.js';
import { DeviceState } from './device-state.js';
import { browserWebRtcTransport } from './webrtc-transport.js';
import type { BrowserRtcLink } from './webrtc-transport.js';
import { browserWsTransport } from './ws-transport.js';

export interface BrowserClientOptions {
  /** The relay's base URL; default: the page's origin. */
  url?: string;
  /** A user token for one session (minted by the app's backend). */
  token: string;
  /** Transports in order of preference (default: WebRTC, then WebSocket when UDP is blocked). */
  transports?: ('webrtc' | 'ws')[];
  /** Send the microphone: `true` asks getUserMedia for it; or pass a track of your own. */
  microphone?: boolean | MediaStreamTrack;
  /** Where the agent's speech plays (default: a detached <audio> element the client makes). */
  audioElement?: HTMLAudioElement;
  /** Where this tab remembers the session (default sessionStorage: each tab is a device); null: nowhere. */
  storage?: Storage | null;
  /** Events kept for re-showing after a reload (default 5000; audio frames are never kept). */
  historyLimit?: number;
  /**
   * Only events of these kinds are read (default: all). A tab that plays the agent from WebRTC
   * can leave out `audio.frame`: the relay then sends it no recorded audio. Change it later with
   * `client.session.setKinds()`.
   */
  kinds?: EventKind[];
  iceServers?: RTCIceServer[];
  heartbeatMs?: number;
  restartTimeoutMs?: number;
  /** Start recovery on `online` and network-change events (default true). */
  watchNetwork?: boolean;
}

/** A chunk of text, with the whole message so far. */
export interface TextUpdate {
  /** The message id (events without one form a message per sender). */
  id: string;
  from: Origin;
  offset: string;
  /** The new chunk ('' for the end of the message). */
  delta: string;
  /** The message up to and including this chunk. */
  text: string;
  done: boolean;
}

export interface ToolCall {
  id: string;
  name: string;
  arguments: Json;
  from: Origin;
  offset: string;
}

export interface ToolResult {
  id: string;
  result?: Json;
  error?: string;
  from: Origin;
  offset: string;
}

/** Whether the agent's speech is audible: `idle` (no track yet), `waiting` (track, no sound flowing), `playing`, `blocked` (autoplay refused until the user interacts). */
export type AudioPlaybackState = 'idle' | 'waiting' | 'playing' | 'blocked';

export interface BrowserClientEvents {
  /** Connection changes: connecting, connected, reconnecting (restart or reconnect), restarted, resumed, fallback, closed. */
  connection: (change: StateChange) => void;
  /** A device of some participant connected, went silent or left; or an agent's own state. */
  presence: (change: PresenceChange | { participant: string; role: Origin['role']; state: string; agent: true }, event: TimelineEvent) => void;
  text: (update: TextUpdate, event: TimelineEvent) => void;
  toolCall: (call: ToolCall, event: TimelineEvent) => void;
  toolResult: (result: ToolResult, event: TimelineEvent) => void;
  /** Control marks (interrupt, turn.start, handoff, …). */
  control: (data: { action: string } & Record<string, Json>, event: TimelineEvent) => void;
  audio: (state: AudioPlaybackState) => void;
  /** Network events the client saw (online, offline, change) and the recovery they started. */
  network: (what: 'online' | 'offline' | 'change') => void;
  /** Every event, in timeline order, once. */
  event: (event: TimelineEvent) => void;
  error: (err: LifelineError) => void;
}

interface TokenView {
  sid: string;
  sub: string;
  role: string;
}

/** Reads a token's claims (no verification: the relay does that). */
export function tokenClaims(token: string): TokenView {
  const part = token.split('.')[1];
  if (!part) throw new LifelineError('UNAUTHORIZED', 'token is not a JWT');
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  const c = JSON.parse(json) as Partial<TokenView>;
  if (typeof c.sid !== 'string' || typeof c.sub !== 'string' || typeof c.role !== 'string') throw new LifelineError('UNAUTHORIZED', 'token lacks sid, sub or role');
  return { sid: c.sid, sub: c.sub, role: c.role };
}

type RtcTransport = ReturnType<typeof browserWebRtcTransport>;

interface NetworkInformationLike extends EventTarget {
  type?: string;
  effectiveType?: string;
}

/**
 * The Lifeline client for browsers: the SDK's client core (ordered resumable stream, exactly-once
 * appends, heartbeats, ICE restart, reconnect, fallback) bound to RTCPeerConnection, getUserMedia
 * and WebSocket. Each tab is a device; its device and producer ids and its last offset live in
 * sessionStorage, so a reload resumes where the tab was, and network events start recovery at once.
 */
export class LifelineClient {
  readonly session: LifelineSession;
  readonly state: DeviceState;
  readonly participant: string;
  readonly microphone: MediaStreamTrack | undefined;
  readonly audioElement: HTMLAudioElement | undefined;
  readonly #emitter = new Emitter<BrowserClientEvents>();
  readonly #texts = new Map<string, string>();
  readonly #rtc: RtcTransport | undefined;
  readonly #cleanup: (() => void)[] = [];
  #audioState: AudioPlaybackState = 'idle';

  private constructor(session: LifelineSession, state: DeviceState, participant: string, rtc: RtcTransport | undefined, mic: MediaStreamTrack | undefined, audio: HTMLAudioElement | undefined) {
    this.session = session;
    this.state = state;
    this.participant = participant;
    this.#rtc = rtc;
    this.microphone = mic;
    this.audioElement = audio;
    // Rebuild text aggregates from what this tab showed before a reload.
    for (const e of state.history) this.#aggregate(e);
  }

  static async connect(opts: BrowserClientOptions): Promise<LifelineClient> {
    const claims = tokenClaims(opts.token);
    const storage = opts.storage === null ? undefined : (opts.storage ?? globalThis.sessionStorage);
    const state = new DeviceState({ sessionId: claims.sid, participant: claims.sub, storage, historyLimit: opts.historyLimit ?? 5000 });
    let mic: MediaStreamTrack | undefined;
    if (opts.microphone instanceof MediaStreamTrack) mic = opts.microphone;
    else if (opts.microphone === true) {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
      mic = stream.getAudioTracks()[0];
    }
    let audio = opts.audioElement;
    let onAudio: ((s: MediaStream) => void) | undefined;
    let client: LifelineClient | undefined;
    const kinds = opts.transports ?? ['webrtc', 'ws'];
    let rtc: RtcTransport | undefined;
    const transports: ClientTransport[] = kinds.map((k) => {
      if (k === 'ws') return browserWsTransport();
      rtc = browserWebRtcTransport({
        ...(opts.iceServers ? { iceServers: opts.iceServers } : {}),
        ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
        audioTrack: () => mic,
        onRemoteAudio: (s) => onAudio?.(s),
      });
      return rtc;
    });
    if (!audio && typeof document !== 'undefined') {
      audio = document.createElement('audio');
      audio.autoplay = true;
    }
    const pending: MediaStream[] = [];
    onAudio = (s) => (client ? client.#playRemote(s) : pending.push(s));
    const session = await LifelineSession.connect({
      url: opts.url ?? location.origin,
      token: opts.token,
      transport: transports,
      device: state.device,
      producer: state.producer,
      resume: state.offset,
      outbox: { restore: state.pending, save: (pending) => state.setPending(pending) },
      ...(opts.kinds ? { kinds: opts.kinds } : {}),
      ...(opts.restartTimeoutMs !== undefined ? { restartTimeoutMs: opts.restartTimeoutMs } : {}),
    });
    client = new LifelineClient(session, state, claims.sub, rtc, mic, audio);
    client.#wire(opts.watchNetwork !== false);
    for (const s of pending) client.#playRemote(s);
    return client;
  }

  on<K extends keyof BrowserClientEvents>(name: K, listener: BrowserClientEvents[K]): () => void {
    return this.#emitter.on(name, listener);
  }

  /** Events this tab has shown so far, including those from before a reload (no audio). */
  get history(): readonly TimelineEvent[] {
    return this.state.history;
  }

  get lastOffset(): string {
    return this.session.lastOffset;
  }

  get audioState(): AudioPlaybackState {
    return this.#audioState;
  }

  /** The WebRTC peer connection in use, if any. */
  get peerConnection(): RTCPeerConnection | undefined {
    const links = this.#rtc?.links;
    if (!links) return undefined;
    let last: BrowserRtcLink | undefined;
    for (const l of links) last = l;
    return last?.pc;
  }

  #wire(watchNetwork: boolean): void {
    const s = this.session;
    this.#cleanup.push(
      s.on('state', (c) => this.#emitter.emit('connection', c)),
      s.on('error', (e) => this.#emitter.emit('error', e)),
      s.on('event', (e) => this.#onEvent(e)),
    );
    if (watchNetwork && typeof addEventListener === 'function') {
      const online = (): void => {
        this.#emitter.emit('network', 'online');
        s.recover('browser online');
      };
      const offline = (): void => this.#emitter.emit('network', 'offline');
      addEventListener('online', online);
      addEventListener('offline', offline);
      this.#cleanup.push(() => removeEventListener('online', online), () => removeEventListener('offline', offline));
      const conn = (navigator as Navigator & { connection?: NetworkInformationLike }).connection;
      if (conn && typeof conn.addEventListener === 'function') {
        const change = (): void => {
          this.#emitter.emit('network', 'change');
          s.recover('network changed');
        };
        conn.addEventListener('change', change);
        this.#cleanup.push(() => conn.removeEventListener('change', change));
      }
    }
  }

  #onEvent(e: TimelineEvent): void {
    this.state.handled(e);
    this.#emitter.emit('event', e);
    this.#dispatch(e);
  }

  #aggregate(e: TimelineEvent): TextUpdate | undefined {
    if (e.kind !== 'text.delta' && e.kind !== 'text.done') return undefined;
    const d = e.data as { text?: string; id?: string };
    const id = d.id ?? `${e.from.participant}/${e.from.device}`;
    const before = this.#texts.get(id) ?? '';
    if (e.kind === 'text.delta') {
      const text = before + (d.text ?? '');
      this.#texts.set(id, text);
      return { id, from: e.from, offset: e.offset, delta: d.text ?? '', text, done: false };
    }
    const text = d.text ?? before;
    this.#texts.delete(id);
    return { id, from: e.from, offset: e.offset, delta: '', text, done: true };
  }

  #dispatch(e: TimelineEvent): void {
    switch (e.kind) {
      case 'text.delta':
      case 'text.done': {
        const u = this.#aggregate(e);
        if (u) this.#emitter.emit('text', u, e);
        return;
      }
      case 'tool.call': {
        const d = e.data as { id: string; name: string; arguments: Json };
        this.#emitter.emit('toolCall', { id: d.id, name: d.name, arguments: d.arguments, from: e.from, offset: e.offset }, e);
        return;
      }
      case 'tool.result': {
        const d = e.data as { id: string; result?: Json; error?: string };
        this.#emitter.emit('toolResult', { ...d, from: e.from, offset: e.offset }, e);
        return;
      }
      case 'presence': {
        const change = e.from.role === 'system' ? asPresenceChange(e.data) : undefined;
        if (change) this.#emitter.emit('presence', change, e);
        else this.#emitter.emit('presence', { participant: e.from.participant, role: e.from.role, state: String((e.data as { state?: unknown }).state), agent: true }, e);
        return;
      }
      case 'control':
        this.#emitter.emit('control', e.data as { action: string } & Record<string, Json>, e);
        return;
      default:
        return;
    }
  }

  #setAudio(state: AudioPlaybackState): void {
    if (state === this.#audioState) return;
    this.#audioState = state;
    this.#emitter.emit('audio', state);
  }

  #playRemote(stream: MediaStream): void {
    const el = this.audioElement;
    if (!el) return;
    el.srcObject = stream;
    this.#setAudio('waiting');
    const track = stream.getAudioTracks()[0];
    const update = (): void => {
      if (el.srcObject !== stream) return;
      this.#setAudio(!el.paused && track && !track.muted ? 'playing' : 'waiting');
    };
    if (track) {
      track.addEventListener('mute', update);
      track.addEventListener('unmute', update);
    }
    el.addEventListener('playing', update);
    el.addEventListener('pause', update);
    el.play().then(update, () => this.#setAudio('blocked'));
  }

  /** Starts playback after a user gesture when autoplay was refused. */
  async unblockAudio(): Promise<void> {
    await this.audioElement?.play();
  }

  // ---- sending -------------------------------------------------------------------------

  append(kind: EventBody['kind'], data: Json, opts: { track?: string; bin?: Uint8Array } = {}): Promise<string> {
    return this.session.append(kind, data, opts);
  }

  /** Sends a whole user message (one `text.done` with its text). */
  say(text: string, id = `m-${this.state.device}-${Date.now().toString(36)}`): Promise<string> {
    return this.session.sendTextDone({ id, text });
  }

  sendToolResult(result: { id: string; result?: Json; error?: string }): Promise<string> {
    return this.session.sendToolResult(result);
  }

  // ---- recovery ------------------------------------------------------------------------

  /** ICE restart now (or a reconnect on WebSocket), as on a network change. */
  restartIce(reason = 'page asked'): void {
    this.session.recover(reason);
  }

  /**
   * Drops the current connection without a goodbye, as a dead network would: the session then
   * reconnects on a new link and resumes from its offset. The demo's "drop network" button.
   */
  dropNetwork(): void {
    const links = this.#rtc?.links;
    if (links && links.size > 0) {
      for (const l of [...links]) l.drop();
      return;
    }
    this.session.recover('dropped');
  }

  /** Leaves: says goodbye to the relay (presence `gone`), keeps this tab's state unless `forget`. */
  close(forget = false): void {
    for (const c of this.#cleanup.splice(0)) c();
    this.session.close();
    if (forget) this.state.clear();
    else this.state.dispose();
    this.microphone?.stop();
    this.#emitter.clear();
  }
}
