/**
 * Two devices of one user hand a conversation over: the "phone" asks the echo agent for a long
 * reply and leaves in the middle of it; the "laptop" joins as the same participant (its own
 * device and producer) and shows the whole conversation, the reply complete, each token once.
 *
 *   npx tsx examples/handover.ts
 */
import { connect, mintToken } from '../src/sdk/index.js';
import type { TimelineEvent } from '../src/sdk/index.js';
import { RELAY_URL, adminToken, createSession, relaySecret } from './config.js';

const TOKENS = 60;
const secret = relaySecret();
const sessionId = await createSession(RELAY_URL, await adminToken(secret), 'echo');
const token = await mintToken(secret, { session: sessionId, participant: 'alice', role: 'user', ttlSeconds: 3600 });
process.stdout.write(`session ${sessionId}; inspector: ${RELAY_URL}/inspect/${sessionId}#token=${token}\n`);

const phone = await connect({ url: RELAY_URL, token, device: 'phone' });
const offset = await phone.sendTextDone({ id: 'ask-1', text: `/stream ${TOKENS}` });
const replyId = `reply-${offset}`;
let onPhone = 0;
await new Promise<void>((resolve) => {
  phone.on('event', (e) => {
    if (e.kind === 'text.delta' && (e.data as { id?: string }).id === replyId && ++onPhone === 20) resolve();
  });
});
process.stdout.write(`phone: saw ${onPhone} of ${TOKENS} tokens, leaving\n`);
phone.close();

const laptop = await connect({ url: RELAY_URL, token, device: 'laptop' });
const tokens: string[] = [];
const presence: string[] = [];
await new Promise<void>((resolve) => {
  laptop.on('event', (e: TimelineEvent) => {
    const d = e.data as Record<string, unknown>;
    if (e.kind === 'presence' && e.from.role === 'system') presence.push(`${String(d['device'])}: ${String(d['state'])}`);
    if (e.kind === 'text.delta' && d['id'] === replyId) tokens.push(String(d['text']).trim());
    if (e.kind === 'text.done' && d['id'] === replyId) resolve();
  });
});
const want = Array.from({ length: TOKENS }, (_, i) => `t${i + 1}`);
const whole = tokens.length === want.length && tokens.every((t, i) => t === want[i]);
process.stdout.write(`laptop: the reply has ${tokens.length} tokens, ${whole ? 'complete, each once' : 'NOT complete'}\n`);
process.stdout.write(`presence seen by the laptop: ${presence.join(', ')}\n`);
laptop.close();
process.exitCode = whole ? 0 : 1;
