/**
 * The session inspector (served at `/inspect/:sessionId`): the session's timeline drawn with one
 * lane per participant and kind, zoomable and scrollable, live while the session runs. It reads
 * `GET /inspect/:id/events` (long poll; audio frames arrive with their decoded level) with the
 * token from the URL fragment (`#token=…`): a token of the session or an admin token.
 */

interface Origin {
  participant: string;
  device: string;
  role: 'user' | 'agent' | 'system';
}

interface Ev {
  offset: string;
  ts: number;
  from: Origin;
  kind: string;
  track?: string;
  data: unknown;
  bytes?: number;
  energyDb?: number;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

const COLORS = {
  user: '#4ea1ff',
  agent: '#b48cff',
  system: '#7ee2b8',
  text: '#b48cff',
  textUser: '#4ea1ff',
  tool: '#ffb454',
  connected: '#47d18c',
  reconnecting: '#ff8f5a',
  gone: '#5b6675',
  gap: '#ff5d6c',
  control: '#ff8f5a',
  grid: '#1f2935',
  label: '#8b98a9',
  text1: '#e6edf3',
};

type LaneKind = 'audio' | 'text' | 'tool' | 'presence';
const LANE_ORDER: LaneKind[] = ['presence', 'audio', 'text', 'tool'];
const LANE_H: Record<LaneKind, number> = { presence: 34, audio: 46, text: 34, tool: 30 };

interface Lane {
  key: string;
  participant: string;
  role: string;
  kind: LaneKind;
}

interface Hit {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  events: Ev[];
  label: string;
}

interface State {
  sessionId: string;
  token: string;
  events: Ev[];
  next: string;
  head: string;
  live: boolean;
  /** Left edge of the view (ms since the epoch) and scale. */
  t0: number;
  msPerPx: number;
  follow: boolean;
  hits: Hit[];
  done: boolean;
  error: string | undefined;
}

const st: State = { sessionId: '', token: '', events: [], next: '-1', head: '-1', live: false, t0: 0, msPerPx: 10, follow: true, hits: [], done: false, error: undefined };
(window as unknown as { inspector: State }).inspector = st;

const GUTTER = 190;
const AXIS = 34;

function laneOf(e: Ev): Lane | undefined {
  let participant = e.from.participant;
  let role: string = e.from.role;
  let kind: LaneKind;
  if (e.kind === 'audio.frame') kind = 'audio';
  else if (e.kind === 'text.delta' || e.kind === 'text.done') kind = 'text';
  else if (e.kind === 'tool.call' || e.kind === 'tool.result') kind = 'tool';
  else if (e.kind === 'presence') {
    kind = 'presence';
    if (e.from.role === 'system') {
      const d = e.data as { participant?: string; role?: string };
      participant = d.participant ?? participant;
      role = d.role ?? role;
    }
  } else return undefined;
  return { key: `${role}:${participant}:${kind}`, participant, role, kind };
}

function lanes(): Lane[] {
  const map = new Map<string, Lane>();
  for (const e of st.events) {
    const l = laneOf(e);
    if (l && !map.has(l.key)) map.set(l.key, l);
  }
  const roleRank = (r: string): number => (r === 'user' ? 0 : r === 'agent' ? 1 : 2);
  return [...map.values()].sort(
    (a, b) => roleRank(a.role) - roleRank(b.role) || a.participant.localeCompare(b.participant) || LANE_ORDER.indexOf(a.kind) - LANE_ORDER.indexOf(b.kind),
  );
}

function span(): { start: number; end: number } {
  if (st.events.length === 0) return { start: Date.now() - 10_000, end: Date.now() };
  return { start: st.events[0]!.ts, end: Math.max(st.events[st.events.length - 1]!.ts, st.events[0]!.ts + 1000) };
}

function fmtClock(ts: number): string {
  const d = new Date(ts);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function fmtRel(ms: number): string {
  return ms >= 60_000 ? `${Math.floor(ms / 60_000)}:${((ms % 60_000) / 1000).toFixed(1).padStart(4, '0')}` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function summary(e: Ev): string {
  const d = (e.data ?? {}) as Record<string, unknown>;
  switch (e.kind) {
    case 'text.delta':
      return JSON.stringify(d['text']);
    case 'text.done':
      return typeof d['text'] === 'string' ? `done: ${JSON.stringify(d['text'])}` : 'end of message';
    case 'tool.call':
      return `${String(d['name'])}(${JSON.stringify(d['arguments'])})`;
    case 'tool.result':
      return `result ${JSON.stringify(d['result'] ?? d['error'])}`;
    case 'presence':
      return e.from.role === 'system' ? `${String(d['device'])}: ${String(d['previous'])} → ${String(d['state'])} (${String(d['reason'])})` : `agent: ${String(d['state'])}`;
    case 'audio.frame':
      return `${e.bytes ?? 0} B opus · ${e.energyDb !== undefined ? `${e.energyDb} dBFS` : 'level unknown'}${d['late'] ? ' · late' : ''}`;
    case 'control':
      return `${String(d['action'])}`;
    default:
      return JSON.stringify(d).slice(0, 200);
  }
}

// ---- drawing ---------------------------------------------------------------------------

const canvas = $<HTMLCanvasElement>('canvas');
const ctx = canvas.getContext('2d')!;
let scheduled = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    draw();
  });
}

function niceStep(msPerPx: number): number {
  const target = msPerPx * 110;
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000];
  return steps.find((s) => s >= target) ?? 3_600_000;
}

function draw(): void {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = '12px ui-sans-serif, system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  const hits: Hit[] = [];
  const { start, end } = span();
  if (st.follow && st.events.length > 0) {
    const visible = (w - GUTTER) * st.msPerPx;
    st.t0 = Math.max(start - 200 * st.msPerPx / 10, end - visible * 0.92);
  }
  const x = (ts: number): number => GUTTER + (ts - st.t0) / st.msPerPx;
  const tEnd = st.t0 + (w - GUTTER) * st.msPerPx;

  // Axis and grid.
  const step = niceStep(st.msPerPx);
  ctx.fillStyle = '#121922';
  ctx.fillRect(GUTTER, 0, w - GUTTER, AXIS);
  for (let t = Math.ceil((st.t0 - start) / step) * step + start; t < tEnd; t += step) {
    const px = x(t);
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath();
    ctx.moveTo(px + 0.5, AXIS);
    ctx.lineTo(px + 0.5, h);
    ctx.stroke();
    ctx.fillStyle = COLORS.label;
    ctx.fillText(`+${fmtRel(t - start)}`, px + 4, 11);
    ctx.fillStyle = '#5b6675';
    ctx.fillText(fmtClock(t), px + 4, 25);
  }

  // Lanes.
  const ls = lanes();
  let y = AXIS + 6;
  const laneY = new Map<string, { y: number; h: number }>();
  let lastParticipant = '';
  for (const l of ls) {
    const lh = LANE_H[l.kind];
    if (l.participant !== lastParticipant) {
      if (lastParticipant) y += 8;
      ctx.fillStyle = l.role === 'user' ? COLORS.user : l.role === 'agent' ? COLORS.agent : COLORS.system;
      ctx.font = '600 12px ui-sans-serif, system-ui, sans-serif';
      ctx.fillText(`${l.participant}`, 12, y + 9);
      ctx.fillStyle = COLORS.label;
      ctx.font = '11px ui-sans-serif, system-ui, sans-serif';
      ctx.fillText(l.role, 12 + ctx.measureText(`${l.participant}  `).width + 40, y + 9);
      y += 18;
      lastParticipant = l.participant;
    }
    laneY.set(l.key, { y, h: lh });
    ctx.fillStyle = '#131a23';
    ctx.fillRect(GUTTER, y, w - GUTTER, lh);
    ctx.fillStyle = COLORS.label;
    ctx.font = '11px ui-sans-serif, system-ui, sans-serif';
    ctx.fillText(l.kind === 'audio' ? 'audio energy' : l.kind === 'tool' ? 'tool calls' : l.kind, 24, y + lh / 2);
    y += lh + 3;
  }

  // Events by lane.
  const byLane = new Map<string, Ev[]>();
  for (const e of st.events) {
    const l = laneOf(e);
    if (!l) continue;
    let arr = byLane.get(l.key);
    if (!arr) byLane.set(l.key, (arr = []));
    arr.push(e);
  }
  const now = st.done ? end : Math.max(end, Date.now());
  ctx.save();
  ctx.beginPath();
  ctx.rect(GUTTER, AXIS, w - GUTTER, h - AXIS);
  ctx.clip();
  for (const l of ls) {
    const box = laneY.get(l.key)!;
    const evs = byLane.get(l.key) ?? [];
    if (l.kind === 'presence') drawPresence(evs, box, x, now, hits);
    else if (l.kind === 'audio') drawAudio(evs, box, x, hits);
    else if (l.kind === 'text') drawText(evs, box, x, hits, l.role);
    else drawTools(evs, box, x, hits);
  }
  // Control marks across every lane.
  for (const e of st.events) {
    if (e.kind !== 'control') continue;
    const px = x(e.ts);
    ctx.strokeStyle = COLORS.control;
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(px + 0.5, AXIS);
    ctx.lineTo(px + 0.5, h);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = COLORS.control;
    ctx.fillText(summary(e), px + 4, AXIS + 8);
    hits.push({ x0: px - 3, x1: px + 3, y0: AXIS, y1: h, events: [e], label: 'control mark' });
  }
  ctx.restore();
  st.hits = hits;
  if (ls.length === 0) {
    ctx.fillStyle = COLORS.label;
    ctx.fillText(st.error ?? 'no events yet', GUTTER + 20, AXIS + 40);
  }
}

type Box = { y: number; h: number };
type X = (ts: number) => number;

function drawPresence(evs: Ev[], box: Box, x: X, now: number, hits: Hit[]): void {
  // Device states (from the relay) as segments, one thin row per device; agent states as labels.
  const devices = new Map<string, Ev[]>();
  const agent: Ev[] = [];
  for (const e of evs) {
    if (e.from.role === 'system') {
      const dev = String((e.data as { device?: unknown }).device);
      let arr = devices.get(dev);
      if (!arr) devices.set(dev, (arr = []));
      arr.push(e);
    } else agent.push(e);
  }
  const rows = Math.max(1, devices.size + (agent.length > 0 ? 1 : 0));
  const rh = Math.min(14, (box.h - 4) / rows);
  let r = 0;
  for (const [dev, list] of devices) {
    const y0 = box.y + 2 + r * rh;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      const state = String((e.data as { state?: unknown }).state);
      const x0 = x(e.ts);
      const x1 = i + 1 < list.length ? x(list[i + 1]!.ts) : state === 'gone' ? x0 + 2 : x(now);
      ctx.fillStyle = state === 'connected' ? COLORS.connected : state === 'reconnecting' ? COLORS.reconnecting : COLORS.gone;
      ctx.globalAlpha = state === 'connected' ? 0.55 : 0.95;
      ctx.fillRect(x0, y0, Math.max(2, x1 - x0), rh - 2);
      ctx.globalAlpha = 1;
      if (state === 'reconnecting') {
        ctx.fillStyle = COLORS.reconnecting;
        ctx.fillText('⟳', x0 - 4, y0 + rh / 2 - 1);
      }
      hits.push({ x0: x0 - 2, x1: Math.max(x0 + 3, x1), y0, y1: y0 + rh, events: [e], label: `device ${dev}` });
    }
    if (x(list[0]!.ts) > GUTTER) {
      ctx.fillStyle = COLORS.text1;
      ctx.font = '10px ui-monospace, monospace';
      ctx.fillText(dev, x(list[0]!.ts) + 3, y0 + rh / 2 - 1);
      ctx.font = '12px ui-sans-serif, system-ui, sans-serif';
    }
    r++;
  }
  if (agent.length > 0) {
    const y0 = box.y + 2 + r * rh;
    for (let i = 0; i < agent.length; i++) {
      const e = agent[i]!;
      const state = String((e.data as { state?: unknown }).state);
      const x0 = x(e.ts);
      const x1 = i + 1 < agent.length ? x(agent[i + 1]!.ts) : x(now);
      ctx.fillStyle = state === 'speaking' ? '#7b5bd6' : state === 'thinking' ? '#5a4a8a' : '#2f2a45';
      ctx.fillRect(x0, y0, Math.max(2, x1 - x0), rh - 2);
      if (x1 - x0 > 50) {
        ctx.fillStyle = COLORS.text1;
        ctx.font = '10px ui-sans-serif, system-ui, sans-serif';
        ctx.fillText(state, x0 + 3, y0 + rh / 2 - 1);
        ctx.font = '12px ui-sans-serif, system-ui, sans-serif';
      }
      hits.push({ x0, x1: Math.max(x0 + 3, x1), y0, y1: y0 + rh, events: [e], label: 'agent state' });
    }
  }
}

function drawAudio(evs: Ev[], box: Box, x: X, hits: Hit[]): void {
  const tracks = new Map<string, Ev[]>();
  for (const e of evs) {
    const k = `${e.from.device}/${e.track ?? ''}`;
    let arr = tracks.get(k);
    if (!arr) tracks.set(k, (arr = []));
    arr.push(e);
  }
  const base = box.y + box.h - 2;
  for (const list of tracks.values()) {
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      const px = x(e.ts);
      const dur = Number((e.data as { durationMs?: unknown }).durationMs ?? 20);
      const bw = Math.max(1, dur / st.msPerPx - (dur / st.msPerPx > 3 ? 1 : 0));
      const level = e.energyDb === undefined ? 0.15 : Math.max(0.04, Math.min(1, (e.energyDb + 70) / 70));
      const late = (e.data as { late?: unknown }).late === true;
      ctx.fillStyle = late ? COLORS.tool : COLORS.user;
      ctx.fillRect(px, base - level * (box.h - 6), bw, level * (box.h - 6));
      hits.push({ x0: px, x1: px + Math.max(bw, 2), y0: box.y, y1: box.y + box.h, events: [e], label: 'audio frame' });
      // A gap: frames of one track more than 200 ms apart (and less than a minute: not a pause between turns).
      const next = list[i + 1];
      if (next && next.ts - e.ts > 200 && next.ts - e.ts < 60_000) {
        const gx0 = px + bw;
        const gx1 = x(next.ts);
        ctx.fillStyle = COLORS.gap;
        ctx.globalAlpha = 0.25;
        ctx.fillRect(gx0, box.y, gx1 - gx0, box.h);
        ctx.globalAlpha = 1;
        hits.push({ x0: gx0, x1: gx1, y0: box.y, y1: box.y + box.h, events: [e, next], label: `gap of ${next.ts - e.ts} ms` });
      }
    }
  }
}

function drawText(evs: Ev[], box: Box, x: X, hits: Hit[], role: string): void {
  const msgs = new Map<string, Ev[]>();
  for (const e of evs) {
    const id = String((e.data as { id?: unknown }).id ?? `${e.from.device}:${e.offset}`);
    let arr = msgs.get(id);
    if (!arr) msgs.set(id, (arr = []));
    arr.push(e);
  }
  const color = role === 'user' ? COLORS.textUser : COLORS.text;
  for (const [id, list] of msgs) {
    let text = '';
    for (const e of list) {
      const d = e.data as { text?: unknown };
      if (e.kind === 'text.delta') text += String(d.text ?? '');
      else if (typeof d.text === 'string' && !text) text = d.text;
    }
    const x0 = x(list[0]!.ts);
    // A whole message in one event (a user's turn) gets room for the start of its text.
    const minWidth = list.length === 1 ? Math.min(180, ctx.measureText(text).width + 10) : 6;
    const x1 = Math.max(x0 + minWidth, x(list[list.length - 1]!.ts) + 4);
    const y0 = box.y + 5;
    const hh = box.h - 10;
    ctx.fillStyle = color;
    ctx.globalAlpha = 0.22;
    ctx.fillRect(x0, y0, x1 - x0, hh);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = color;
    ctx.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0 - 1, hh - 1);
    for (const e of list) {
      const px = x(e.ts);
      ctx.fillStyle = color;
      ctx.fillRect(px, y0 + hh - 4, 1, 4);
    }
    const room = x1 - x0 - 8;
    if (room > 20) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(x0, y0, x1 - x0, hh);
      ctx.clip();
      ctx.fillStyle = COLORS.text1;
      ctx.fillText(text.replace(/\s+/g, ' '), x0 + 4, y0 + hh / 2);
      ctx.restore();
    }
    hits.push({ x0, x1, y0, y1: y0 + hh, events: list, label: `message ${id}` });
  }
}

function drawTools(evs: Ev[], box: Box, x: X, hits: Hit[]): void {
  const calls = new Map<string, Ev>();
  const cy = box.y + box.h / 2;
  for (const e of evs) {
    const id = String((e.data as { id?: unknown }).id);
    const px = x(e.ts);
    if (e.kind === 'tool.call') {
      calls.set(id, e);
      ctx.fillStyle = COLORS.tool;
      ctx.beginPath();
      ctx.moveTo(px, cy - 7);
      ctx.lineTo(px + 7, cy);
      ctx.lineTo(px, cy + 7);
      ctx.lineTo(px - 7, cy);
      ctx.closePath();
      ctx.fill();
      ctx.fillStyle = COLORS.text1;
      ctx.fillText(String((e.data as { name?: unknown }).name), px + 10, cy);
      hits.push({ x0: px - 7, x1: px + 7, y0: cy - 8, y1: cy + 8, events: [e], label: 'tool call' });
    } else {
      const call = calls.get(id);
      if (call) {
        ctx.strokeStyle = COLORS.tool;
        ctx.beginPath();
        ctx.moveTo(x(call.ts) + 7, cy + 0.5);
        ctx.lineTo(px - 5, cy + 0.5);
        ctx.stroke();
      }
      ctx.strokeStyle = COLORS.tool;
      ctx.fillStyle = '#221c10';
      ctx.beginPath();
      ctx.arc(px, cy, 5, 0, Math.PI * 2);
      ctx.fill();
      ctx.stroke();
      hits.push({ x0: px - 6, x1: px + 6, y0: cy - 8, y1: cy + 8, events: [e], label: 'tool result' });
    }
  }
}

// ---- interaction -----------------------------------------------------------------------

const tip = $('tip');

function hitAt(mx: number, my: number): Hit | undefined {
  let best: Hit | undefined;
  for (const h of st.hits) {
    if (mx >= h.x0 - 2 && mx <= h.x1 + 2 && my >= h.y0 && my <= h.y1) {
      if (!best || h.x1 - h.x0 < best.x1 - best.x0) best = h;
    }
  }
  return best;
}

function showTip(mx: number, my: number): void {
  const ts = st.t0 + (mx - GUTTER) * st.msPerPx;
  const { start } = span();
  $('cursor').textContent = mx > GUTTER ? `${fmtClock(ts)} · +${fmtRel(ts - start)}` : '';
  const h = hitAt(mx, my);
  if (!h) {
    tip.style.display = 'none';
    return;
  }
  const first = h.events[0]!;
  const last = h.events[h.events.length - 1]!;
  const esc = (s: string): string => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
  const off = (o: string): string => o.replace(/^0+(?=\d)/, '');
  const lines = [
    `<div class="h">${esc(h.label)}</div>`,
    `<div class="m">offset ${off(first.offset)}${h.events.length > 1 ? ` – ${off(last.offset)} (${h.events.length} events)` : ''}</div>`,
    `<div class="m">${new Date(first.ts).toISOString()} · +${fmtRel(first.ts - start)}</div>`,
    `<div>${esc(first.from.participant)} / ${esc(first.from.device)} (${first.from.role}) · ${esc(first.kind)}</div>`,
    `<div>${esc(h.events.length > 1 && first.kind.startsWith('text') ? h.events.map((e) => String((e.data as { text?: unknown }).text ?? '')).join('') : summary(first)).slice(0, 300)}</div>`,
  ];
  tip.innerHTML = lines.join('');
  tip.style.display = 'block';
  const wrap = $('wrap').getBoundingClientRect();
  tip.style.left = `${Math.min(mx + 14, wrap.width - tip.offsetWidth - 8)}px`;
  tip.style.top = `${Math.min(my + 14, wrap.height - tip.offsetHeight - 8)}px`;
}

function zoom(factor: number, aroundX = (canvas.clientWidth + GUTTER) / 2): void {
  const at = st.t0 + (aroundX - GUTTER) * st.msPerPx;
  st.msPerPx = Math.min(600_000, Math.max(0.05, st.msPerPx * factor));
  st.t0 = at - (aroundX - GUTTER) * st.msPerPx;
  schedule();
}

function fit(): void {
  const { start, end } = span();
  const width = Math.max(100, canvas.clientWidth - GUTTER - 30);
  st.msPerPx = Math.max(0.05, (end - start) / width);
  st.t0 = start - 10 * st.msPerPx;
  schedule();
}

function setFollow(on: boolean): void {
  st.follow = on;
  $('follow').textContent = `Follow live: ${on ? 'on' : 'off'}`;
  schedule();
}

function wire(): void {
  let drag: { x: number; t0: number } | undefined;
  canvas.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const rect = canvas.getBoundingClientRect();
    if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
      setFollow(false);
      st.t0 += (ev.deltaX || ev.deltaY) * st.msPerPx;
      schedule();
      return;
    }
    setFollow(false);
    zoom(Math.exp(ev.deltaY * 0.002), ev.clientX - rect.left);
  }, { passive: false });
  canvas.addEventListener('mousedown', (ev) => {
    drag = { x: ev.clientX, t0: st.t0 };
    canvas.classList.add('dragging');
  });
  addEventListener('mouseup', () => {
    drag = undefined;
    canvas.classList.remove('dragging');
  });
  canvas.addEventListener('mousemove', (ev) => {
    const rect = canvas.getBoundingClientRect();
    if (drag) {
      if (Math.abs(ev.clientX - drag.x) > 2) setFollow(false);
      st.t0 = drag.t0 - (ev.clientX - drag.x) * st.msPerPx;
      schedule();
    }
    showTip(ev.clientX - rect.left, ev.clientY - rect.top);
  });
  canvas.addEventListener('mouseleave', () => (tip.style.display = 'none'));
  canvas.addEventListener('click', (ev) => {
    const rect = canvas.getBoundingClientRect();
    const h = hitAt(ev.clientX - rect.left, ev.clientY - rect.top);
    if (h) $('detail').textContent = JSON.stringify(h.events.length > 20 ? h.events.slice(0, 20) : h.events, null, 2);
  });
  $('zoom-in').addEventListener('click', () => {
    setFollow(false);
    zoom(0.5);
  });
  $('zoom-out').addEventListener('click', () => zoom(2));
  $('fit').addEventListener('click', () => {
    setFollow(false);
    fit();
  });
  $('follow').addEventListener('click', () => setFollow(!st.follow));
  addEventListener('resize', schedule);
  setInterval(() => !st.done && st.follow && schedule(), 250);
}

// ---- data ------------------------------------------------------------------------------

async function api<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${st.token}` }, ...(signal ? { signal } : {}) });
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      if (body.error) msg = `${body.error.code}: ${body.error.message}`;
    } catch {
      // not JSON
    }
    throw new Error(msg);
  }
  return (await res.json()) as T;
}

function setLive(state: 'live' | 'caught up' | 'loading' | 'error', text?: string): void {
  $('live').className = `badge ${state === 'live' ? 'ok' : state === 'error' ? 'bad' : 'warn'}`;
  $('live-state').textContent = text ?? state;
}

async function poll(): Promise<void> {
  let first = true;
  for (;;) {
    try {
      const page = await api<{ events: Ev[]; next: string; head: string }>(
        `/inspect/${encodeURIComponent(st.sessionId)}/events?after=${st.next}&limit=2000&waitMs=${first ? 0 : 20_000}`,
      );
      st.events.push(...page.events);
      st.next = page.next;
      st.head = page.head;
      $('count').textContent = String(st.events.length);
      $('head').textContent = page.head.replace(/^0+(?=\d)/, '');
      const { start, end } = span();
      $('span').textContent = st.events.length ? fmtRel(end - start) : '–';
      if (first && page.events.length < 2000) {
        first = false;
        st.live = true;
        fit();
        // A session with recent events is followed live; an old one stays fitted.
        const { end: last } = span();
        setFollow(st.events.length > 0 && Date.now() - last < 30_000);
        setLive('live', 'live');
      }
      schedule();
    } catch (err) {
      st.error = err instanceof Error ? err.message : String(err);
      setLive('error', st.error);
      schedule();
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function main(): Promise<void> {
  const m = /^\/inspect\/([^/]+)$/.exec(location.pathname);
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token') ?? sessionStorage.getItem('lifeline:inspect-token') ?? '';
  if (!m || !token) {
    $('login').hidden = false;
    if (m) $<HTMLInputElement>('login-session').value = decodeURIComponent(m[1]!);
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const sid = $<HTMLInputElement>('login-session').value.trim();
      const t = $<HTMLInputElement>('login-token').value.trim();
      location.href = `/inspect/${encodeURIComponent(sid)}#token=${encodeURIComponent(t)}`;
      if (m && decodeURIComponent(m[1]!) === sid) location.reload();
    });
    return;
  }
  sessionStorage.setItem('lifeline:inspect-token', token);
  st.sessionId = decodeURIComponent(m[1]!);
  st.token = token;
  $('app').hidden = false;
  $('sid').textContent = st.sessionId;
  try {
    const claims = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: string; role?: string };
    $('who').textContent = `as ${claims.sub ?? '?'} (${claims.role ?? '?'})`;
  } catch {
    $('who').textContent = 'token unreadable';
  }
  wire();
  setFollow(false);
  setLive('loading');
  void poll();
}

void main();
