import type { TestRelay } from './relay.js';

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: any;
}

export interface ApiOptions {
  token?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent exactly as given, with content-type application/json (for malformed bodies). */
  rawBody?: string;
  headers?: Record<string, string>;
}

/** One HTTP request to the relay, answered as status + headers + body (parsed when JSON). */
export async function api(baseUrl: string, method: string, path: string, opts: ApiOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(new URL(path, baseUrl), { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown;
  try {
    json = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The session's head offset, as the HTTP API reports it (admin token). */
export async function headOf(relay: TestRelay, sessionId: string): Promise<string> {
  const res = await api(relay.url, 'GET', `/v1/sessions/${sessionId}`, { token: relay.adminToken });
  if (res.status !== 200) throw new Error(`GET session ${sessionId}: ${res.status} ${res.text}`);
  return res.json.head as string;
}

/**
 * The value of a metric in Prometheus text, e.g. metric(text, 'lifeline_errors_total', {code: 'BAD_FRAME'}):
 * the sum over the samples whose labels include `labels` (so `{}` totals a labelled counter); 0 when
 * none is there (a counter never incremented).
 */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[pair[1]!] = pair[2]!;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** Scrapes /metrics. */
export async function scrape(baseUrl: string): Promise<string> {
  const res = await fetch(new URL('/metrics', baseUrl));
  if (res.status !== 200) throw new Error(`/metrics: ${res.status}`);
  return res.text();
}

/** lifeline_errors_total for one code. */
export async function errorCount(baseUrl: string, code: string): Promise<number> {
  return metric(await scrape(baseUrl), 'lifeline_errors_total', { code });
}
