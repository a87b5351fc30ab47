/**
 * The demo page (served at `/`): a user talking to the example echo agent through the relay.
 * The token lives in the URL fragment (#token=…) so a reload, or a second tab opened with the same
 * URL, joins the same session as the same user (each tab its own device).
 */
import { LifelineClient, tokenClaims } from '../index.js';
import type { PresenceChange, StateChange, TimelineEvent } from '../index.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

interface DemoState {
  client: LifelineClient | undefined;
  /** Offsets of the events this page has shown, in order (tests check: no gap, none twice). */
  shown: string[];
  /** Connection changes seen (reconnecting, restarted with downMs, …). */
  changes: StateChange[];
  ready: boolean;
  error: string | undefined;
}

const demo: DemoState = { client: undefined, shown: [], changes: [], ready: false, error: undefined };
(window as unknown as { demo: DemoState }).demo = demo;

function fragment(): URLSearchParams {
  return new URLSearchParams(location.hash.slice(1));
}

async function tokenForPage(): Promise<string | undefined> {
  const t = fragment().get('token');
  if (t) return t;
  const res = await fetch('/demo/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  if (res.status !== 201) return undefined;
  const body = (await res.json()) as { token: string };
  const params = fragment();
  params.set('token', body.token);
  history.replaceState(null, '', `#${params.toString()}`);
  return body.token;
}

function time(ts: number): string {
  const d = new Date(ts);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function summary(e: TimelineEvent): string {
  const d = e.data as Record<string, unknown> | null;
  switch (e.kind) {
    case 'text.delta':
      return JSON.stringify(d?.['text'] ?? '');
    case 'text.done':
      return typeof d?.['text'] === 'string' ? JSON.stringify(d['text']) : 'end of message';
    case 'tool.call':
      return `${String(d?.['name'])}(${JSON.stringify(d?.['arguments'])})`;
    case 'tool.result':
      return `→ ${JSON.stringify(d?.['result'] ?? d?.['error'])}`;
    case 'presence':
      if (e.from.role === 'system') return `${String(d?.['participant'])}/${String(d?.['device'])}: ${String(d?.['previous'])} → ${String(d?.['state'])} (${String(d?.['reason'])})`;
      return `agent is ${String(d?.['state'])}`;
    case 'control':
      return String(d?.['action'] ?? '');
    case 'audio.frame':
      return `${e.bin?.length ?? 0} bytes`;
    default:
      return JSON.stringify(d).slice(0, 120);
  }
}

const kindClass = (k: string): string => (k.startsWith('text') ? 'k-text' : k.startsWith('tool') ? 'k-tool' : k === 'presence' ? 'k-presence' : k === 'control' ? 'k-control' : k.startsWith('audio') ? 'k-audio' : '');

class View {
  readonly chat = $('chat');
  readonly rows = $('rows');
  readonly bubbles = new Map<string, HTMLElement>();
  readonly devices = new Map<string, { participant: string; role: string; device: string; state: string }>();
  readonly agentStates = new Map<string, string>();
  events = 0;
  tokens = 0;
  audioFrames = 0;
  heals = 0;

  #scrollChat(): void {
    this.chat.scrollTop = this.chat.scrollHeight;
  }

  mark(text: string, cls: 'warn' | 'ok' | '' = ''): void {
    const el = document.createElement('div');
    el.className = `mark ${cls}`;
    el.textContent = text;
    this.chat.append(el);
    this.#scrollChat();
  }

  event(e: TimelineEvent, me: string): void {
    demo.shown.push(e.offset);
    this.events++;
    if (e.kind === 'audio.frame') {
      this.audioFrames++;
      this.#counters(e);
      return;
    }
    this.#row(e);
    const d = e.data as Record<string, unknown>;
    switch (e.kind) {
      case 'text.delta': {
        this.tokens++;
        const id = String(d['id'] ?? `${e.from.participant}/${e.from.device}`);
        const b = this.#bubble(id, e);
        b.querySelector('.body')!.append(String(d['text'] ?? ''));
        break;
      }
      case 'text.done': {
        const id = String(d['id'] ?? `${e.from.participant}/${e.from.device}`);
        const b = this.#bubble(id, e);
        if (typeof d['text'] === 'string' && b.querySelector('.body')!.textContent === '') b.querySelector('.body')!.textContent = d['text'];
        b.classList.remove('streaming');
        break;
      }
      case 'tool.call': {
        const el = document.createElement('div');
        el.className = 'tool';
        el.dataset['call'] = String(d['id']);
        el.innerHTML = `<span class="tag">tool</span><span class="name"></span><span class="args mono"></span> <span class="res"></span>`;
        el.querySelector('.name')!.textContent = String(d['name']);
        el.querySelector('.args')!.textContent = `(${JSON.stringify(d['arguments'])})`;
        this.chat.append(el);
        break;
      }
      case 'tool.result': {
        const el = this.chat.querySelector<HTMLElement>(`.tool[data-call="${CSS.escape(String(d['id']))}"] .res`);
        if (el) el.textContent = `→ ${JSON.stringify(d['result'] ?? d['error'])}`;
        break;
      }
      case 'presence':
        this.#presence(e);
        break;
      case 'control':
        this.mark(`control: ${String(d['action'])}`);
        break;
      default:
        break;
    }
    void me;
    this.#scrollChat();
    this.#counters(e);
  }

  #counters(e: TimelineEvent): void {
    $('s-events').textContent = String(this.events);
    $('s-tokens').textContent = String(this.tokens);
    $('s-audio').textContent = String(this.audioFrames);
    $('tl-count').textContent = `${this.events} events`;
    $('offset').textContent = e.offset.replace(/^0+(?=\d)/, '');
  }

  #bubble(id: string, e: TimelineEvent): HTMLElement {
    let b = this.bubbles.get(id);
    if (!b) {
      b = document.createElement('div');
      b.className = `msg ${e.from.role === 'user' ? 'user' : 'agent'}${e.kind === 'text.delta' ? ' streaming' : ''}`;
      b.dataset['id'] = id;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = `${e.from.participant} · ${e.from.device}`;
      const body = document.createElement('span');
      body.className = 'body';
      b.append(who, body);
      this.chat.append(b);
      this.bubbles.set(id, b);
    }
    return b;
  }

  #row(e: TimelineEvent): void {
    const tr = document.createElement('tr');
    tr.dataset['offset'] = e.offset;
    const cells = [e.offset.replace(/^0+(?=\d)/, ''), time(e.ts), `${e.from.participant}`, e.kind, summary(e)];
    cells.forEach((c, i) => {
      const td = document.createElement('td');
      if (i === 0) td.className = 'off mono';
      if (i === 4) td.className = 'sum';
      if (i === 3) {
        const k = document.createElement('span');
        k.className = `kind ${kindClass(c)}`;
        k.textContent = c;
        td.append(k);
      } else td.textContent = c;
      tr.append(td);
    });
    this.rows.prepend(tr);
    while (this.rows.childElementCount > 400) this.rows.lastElementChild?.remove();
    $('tl-count').textContent = `${this.events} events`;
  }

  #presence(e: TimelineEvent): void {
    if (e.from.role === 'system') {
      const d = e.data as unknown as PresenceChange;
      this.devices.set(`${d.participant}/${d.device}`, { participant: d.participant, role: d.role, device: d.device, state: d.state });
    } else {
      this.agentStates.set(e.from.participant, String((e.data as { state?: unknown }).state));
    }
    const box = $('presence');
    box.textContent = '';
    const people = new Map<string, { role: string; devices: { device: string; state: string }[] }>();
    for (const d of this.devices.values()) {
      if (d.role === 'system') continue;
      const p = people.get(d.participant) ?? { role: d.role, devices: [] };
      p.devices.push({ device: d.device, state: d.state });
      people.set(d.participant, p);
    }
    for (const [participant, p] of people) {
      const row = document.createElement('div');
      row.className = 'person';
      const name = document.createElement('b');
      name.textContent = participant;
      const role = document.createElement('span');
      role.className = 'role';
      role.textContent = p.role;
      row.append(name, role);
      for (const dv of p.devices) {
        const tag = document.createElement('span');
        tag.className = `device ${dv.state}`;
        tag.textContent = `${dv.device}: ${dv.state}`;
        row.append(tag);
      }
      const agent = this.agentStates.get(participant);
      if (agent) {
        const tag = document.createElement('span');
        tag.className = 'device agent-state';
        tag.textContent = agent;
        row.append(tag);
      }
      box.append(row);
    }
  }
}

function showState(c: StateChange, view: View): void {
  const badge = $('conn');
  badge.className = `badge ${c.state === 'connected' || c.state === 'restarted' || c.state === 'resumed' ? 'ok' : c.state === 'closed' ? 'bad' : 'warn'}`;
  $('conn-state').textContent = c.state;
  $('conn-detail').textContent = ` ${c.transport}${c.mode ? ` · ${c.mode}` : ''}`;
  if (c.state === 'reconnecting') view.mark(`link lost (${c.reason ?? '?'}) — ${c.mode === 'restart' ? 'ICE restart' : 'reconnecting'}…`, 'warn');
  if ((c.state === 'restarted' || c.state === 'resumed') && c.downMs !== undefined) {
    view.heals++;
    $('s-heals').textContent = String(view.heals);
    $('s-down').textContent = `${c.downMs} ms`;
    view.mark(`healed in ${c.downMs} ms (${c.state === 'restarted' ? 'ICE restart, same peer connection' : 'new connection, resumed from offset'})`, 'ok');
  }
}

function micMeter(track: MediaStreamTrack): void {
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(new MediaStream([track]));
  const an = ctx.createAnalyser();
  an.fftSize = 1024;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  const bar = $('mic-level');
  const tick = (): void => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    const db = 20 * Math.log10(Math.sqrt(sum / buf.length) + 1e-9);
    bar.style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
    requestAnimationFrame(tick);
  };
  void ctx.resume().catch(() => undefined);
  tick();
}

async function main(): Promise<void> {
  const token = await tokenForPage();
  if (!token) {
    $('login').hidden = false;
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      location.hash = `token=${encodeURIComponent($<HTMLInputElement>('login-token').value.trim())}`;
      location.reload();
    });
    return;
  }
  const claims = tokenClaims(token);
  $('app').hidden = false;
  $('session-id').textContent = claims.sid;
  $<HTMLAnchorElement>('inspect-link').href = `/inspect/${encodeURIComponent(claims.sid)}#token=${encodeURIComponent(token)}`;
  $<HTMLAnchorElement>('second-tab').href = `/#token=${encodeURIComponent(token)}`;
  const view = new View();
  const wantMic = fragment().get('mic') !== '0';
  // `#…&transport=ws` forces the WebSocket fallback (what a network that blocks UDP ends up with).
  const transports = fragment().get('transport') === 'ws' ? (['ws'] as const) : (['webrtc', 'ws'] as const);
  let client: LifelineClient;
  try {
    client = await LifelineClient.connect({ token, microphone: wantMic, transports: [...transports] }).catch((err: unknown) => {
      if (!wantMic) throw err;
      view.mark('no microphone: text only', 'warn');
      return LifelineClient.connect({ token, microphone: false, transports: [...transports] });
    });
  } catch (err) {
    demo.error = err instanceof Error ? err.message : String(err);
    $('conn-state').textContent = 'failed';
    view.mark(`could not connect: ${demo.error}`, 'warn');
    return;
  }
  demo.client = client;
  for (const e of client.history) view.event(e, client.participant);
  if (client.history.length > 0) view.mark(`reloaded: resumed after offset ${client.lastOffset.replace(/^0+(?=\d)/, '')}`, 'ok');
  client.on('event', (e) => view.event(e, client.participant));
  client.on('connection', (c) => {
    demo.changes.push(c);
    showState(c, view);
  });
  client.on('audio', (s) => ($('audio-state').textContent = s));
  client.on('network', (w) => view.mark(`browser says: ${w}`, w === 'offline' ? 'warn' : ''));
  showState({ state: client.session.state, transport: client.session.transport, at: Date.now() }, view);
  setInterval(() => ($('rtt').textContent = client.session.rttMs !== undefined ? `${client.session.rttMs} ms` : '–'), 500);
  if (client.microphone) micMeter(client.microphone);
  else $<HTMLButtonElement>('mic').disabled = true;

  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('text');
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    void client.say(text);
  });
  $('mic').addEventListener('click', () => {
    const t = client.microphone;
    if (!t) return;
    t.enabled = !t.enabled;
    $('mic').textContent = t.enabled ? 'Mic on' : 'Mic off';
  });
  $('restart').addEventListener('click', () => client.restartIce('demo button'));
  $('drop').addEventListener('click', () => client.dropNetwork());
  $('audio-state').addEventListener('click', () => void client.unblockAudio());
  demo.ready = true;
}

void main();
