/**
 * A user in Node: creates a session for the echo agent (or joins LIFELINE_SESSION), says one
 * thing, and prints the agent's streamed reply, its tool call and presence as they arrive.
 *
 *   npx tsx examples/user-client.ts "hello there"          # over WebSocket
 *   npx tsx examples/user-client.ts --webrtc "/stream 20"  # over WebRTC (data channel)
 */
import { connect, mintToken, wsTransport } from '../src/sdk/index.js';
import { webrtcTransport } from '../src/sdk/node-webrtc.js';
import { RELAY_URL, adminToken, createSession, relaySecret } from './config.js';

const args = process.argv.slice(2);
const useRtc = args.includes('--webrtc');
const text = args.filter((a) => a !== '--webrtc').join(' ') || 'hello from Node';

const secret = relaySecret();
const sessionId = process.env['LIFELINE_SESSION'] ?? (await createSession(RELAY_URL, await adminToken(secret), 'echo'));
const token = await mintToken(secret, { session: sessionId, participant: 'node-user', role: 'user', ttlSeconds: 3600 });
const session = await connect({ url: RELAY_URL, token, transport: useRtc ? webrtcTransport() : wsTransport() });
process.stdout.write(`session ${sessionId} over ${session.transport}; inspector: ${RELAY_URL}/inspect/${sessionId}#token=${token}\n`);

session.on('state', (c) => process.stdout.write(`\n[${c.state}${c.downMs !== undefined ? ` after ${c.downMs} ms` : ''}]\n`));
const sent = await session.sendTextDone({ id: `m-${Date.now()}`, text });
const replyId = `reply-${sent}`;
await new Promise<void>((resolve) => {
  session.on('event', (e) => {
    if (e.from.role !== 'agent') return;
    const d = e.data as Record<string, unknown>;
    if (e.kind === 'text.delta' && d['id'] === replyId) process.stdout.write(String(d['text']));
    if (e.kind === 'tool.call') process.stdout.write(`[tool ${String(d['name'])}(${JSON.stringify(d['arguments'])})] `);
    if (e.kind === 'tool.result') process.stdout.write(`[→ ${JSON.stringify(d['result'])}]\n`);
    if (e.kind === 'text.done' && d['id'] === replyId) resolve();
  });
});
process.stdout.write(`\n(last offset ${session.lastOffset})\n`);
session.close();
