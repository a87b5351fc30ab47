/**
 * The echo agent: a voice/text agent that needs no API key. For each user turn it thinks (a
 * presence change), calls a fake tool and streams a reply token by token; a message
 * `/stream N` makes it stream N numbered tokens (the demo and the browser tests use it).
 *
 *   npx tsx examples/echo-agent.ts        # registers as a worker for role "echo"
 *
 * Sessions created with `{"agent": {"role": "echo"}}` (the demo page does that) are handed to it.
 *
 * Audio: the agent joins each session over WebRTC, listens to the user's microphone (live RTP),
 * and when the user stops talking (600 ms below -45 dBFS after speech) it says the same thing
 * back on its speech track: the user hears themselves "after a moment".
 */
import { pathToFileURL } from 'node:url';
import { AgentWorker, ANY_SESSION, mintToken } from '../src/sdk/index.js';
import type { AgentJob, LifelineSession, TimelineEvent } from '../src/sdk/index.js';
import { PcmDecoder } from '../src/sdk/audio/opus.js';
import { AudioPublisher } from '../src/sdk/audio/publisher.js';
import { AudioReceiver } from '../src/sdk/audio/receiver.js';
import { webrtcTransport } from '../src/sdk/node-webrtc.js';

export interface EchoAgentOptions {
  url: string;
  /** An agent token for every session (sid "*"). */
  token: string;
  id?: string;
  role?: string;
  /** Pause between streamed tokens (default 40 ms: about the pace of a language model). */
  tokenDelayMs?: number;
  /** Echo the user's audio (default true); joins sessions over WebRTC for it. */
  audio?: boolean;
  /** With audio: ICE addresses to use (e.g. ['127.0.0.1']); default every interface. */
  iceHosts?: string[];
  onError?: (err: unknown) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The tokens of the reply to one user message. */
export function replyTokens(text: string): string[] {
  const m = /^\/stream\s+(\d{1,5})\s*$/.exec(text.trim());
  if (m) return Array.from({ length: Number(m[1]) }, (_, i) => `t${i + 1} `);
  const words = text.trim().split(/\s+/).filter(Boolean);
  return ['You ', 'said: ', ...words.map((w) => `${w} `), '— ', 'echo ', 'done.'];
}

async function answer(session: LifelineSession, turn: TimelineEvent, tokenDelayMs: number): Promise<void> {
  const text = String((turn.data as { text?: unknown }).text ?? '');
  const id = `reply-${turn.offset}`;
  await session.setPresence('thinking');
  const callId = `call-${turn.offset}`;
  await session.sendToolCall({ id: callId, name: 'lookup_echo', arguments: { text: text.slice(0, 200) } });
  await sleep(tokenDelayMs);
  await session.sendToolResult({ id: callId, result: { words: text.trim().split(/\s+/).filter(Boolean).length, chars: text.length } });
  await session.setPresence('speaking');
  for (const token of replyTokens(text)) {
    // Not awaited one by one (tokens stream); a refusal (e.g. the lease moved on) ends the turn at flush().
    session.sendText(token, { id }).catch(() => undefined);
    if (tokenDelayMs > 0) await sleep(tokenDelayMs);
  }
  await session.sendTextDone({ id });
  await session.flush();
  await session.setPresence('listening');
}

/** Level of a decoded frame in dBFS. */
function levelDb(pcm: Int16Array): number {
  if (pcm.length === 0) return -100;
  let sum = 0;
  for (const v of pcm) sum += (v / 32768) ** 2;
  const rms = Math.sqrt(sum / pcm.length);
  return rms > 1e-5 ? 20 * Math.log10(rms) : -100;
}

/**
 * Echoes the user's speech: frames are collected from the first loud one; after 600 ms of quiet
 * the utterance (at most 10 s) is played back on the agent's speech track, paced in real time.
 */
async function echoAudio(session: LifelineSession, signal: AbortSignal): Promise<void> {
  const decoder = await PcmDecoder.create(48000);
  const receiver = new AudioReceiver(session, { from: 'user', source: 'rtp' });
  const publisher = new AudioPublisher(session, { track: 'speech' });
  let utterance: Uint8Array[] = [];
  let quietFrames = 0;
  receiver.onFrame((frame) => {
    const loud = levelDb(decoder.decode(frame.payload)) > -45;
    if (utterance.length === 0 && !loud) return;
    utterance.push(frame.payload);
    quietFrames = loud ? 0 : quietFrames + 1;
    if (quietFrames >= 30 || utterance.length >= 500) {
      const spoken = utterance.slice(0, utterance.length - quietFrames);
      utterance = [];
      quietFrames = 0;
      if (publisher.queuedMs < 2000) publisher.pushAll(spoken);
    }
  });
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  receiver.close();
  publisher.close();
  decoder.close();
}

/** Runs one session: answers every user message after the lease's cursor. */
async function handle(job: AgentJob, tokenDelayMs: number, audio: boolean): Promise<void> {
  const { session } = job;
  if (audio && session.transport === 'webrtc') void echoAudio(session, job.signal).catch(() => undefined);
  await session.setPresence('listening');
  for await (const event of session.stream) {
    if (job.signal.aborted) return;
    if (event.from.role !== 'user' || event.kind !== 'text.done') continue;
    await answer(session, event, tokenDelayMs);
    job.commit(event.offset);
  }
}

/** Starts the echo agent as a worker of `role` (default "echo"). */
export function startEchoAgent(opts: EchoAgentOptions): Promise<AgentWorker> {
  const tokenDelayMs = opts.tokenDelayMs ?? 40;
  return AgentWorker.start({
    url: opts.url,
    token: opts.token,
    id: opts.id ?? 'echo-agent',
    roles: [opts.role ?? 'echo'],
    handle: (job) => handle(job, tokenDelayMs, opts.audio !== false),
    ...(opts.audio !== false ? { transport: () => webrtcTransport({ iceHosts: opts.iceHosts ?? [] }) } : {}),
    onError: opts.onError ?? ((err) => process.stderr.write(`echo-agent: ${err instanceof Error ? err.message : String(err)}\n`)),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { RELAY_URL, relaySecret } = await import('./config.js');
  const id = process.env['ECHO_AGENT_ID'] ?? 'echo-agent';
  const token = process.env['LIFELINE_AGENT_TOKEN'] ?? (await mintToken(relaySecret(), { session: ANY_SESSION, participant: id, role: 'agent', ttlSeconds: 24 * 3600 }));
  const iceHosts = process.env['LIFELINE_RTC_ICE_HOSTS']?.split(',').filter(Boolean);
  const worker = await startEchoAgent({
    url: RELAY_URL,
    token,
    id,
    ...(iceHosts ? { iceHosts } : {}),
    audio: process.env['ECHO_AUDIO'] !== '0',
    ...(process.env['ECHO_TOKEN_DELAY_MS'] ? { tokenDelayMs: Number(process.env['ECHO_TOKEN_DELAY_MS']) } : {}),
  });
  process.stdout.write(`echo agent "${id}" is waiting for sessions on ${RELAY_URL} (role echo)\n`);
  const stop = (): void => {
    worker.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
