/**
 * Measures ICE restarts between headless Chromium and the relay (figures for docs/BROWSER.md, not
 * a test: timing does not belong in assertions on a shared machine).
 *
 *   node --import tsx test/browser/restart-gap.ts [rounds=24]
 *
 * For restarts started by the page and by the relay, while the echo agent streams tokens 5 ms
 * apart: (1) relay side, offer applied → werift ICE `connected` again (werift cannot send in
 * between: it drops its selected pair on restart); (2) page side, the largest gap between events,
 * also with the proposed werift fix ("keep sending on the old pair until the new one is
 * nominated", applied here from outside) and with no restart at all (the machine's noise).
 */
import type { RTCPeerConnection } from 'werift';
import { buildBrowserBundle, launchChromium, startDemoRelay } from './chromium.js';

interface PairLike {
  protocol: { sendData(data: Buffer, addr: unknown): Promise<void> };
  remoteAddr: unknown;
}
interface ConnectionLike {
  nominated?: PairLike;
  send: (data: Buffer) => Promise<void>;
}

/** The proposed werift fix (see the report of issue 8): make before break. */
export function sendOnOldPairUntilNominated(pc: RTCPeerConnection): void {
  for (const t of pc.iceTransports) {
    const conn = t.connection as unknown as ConnectionLike;
    const old = conn.nominated;
    if (!old) continue;
    const original = conn.send;
    conn.send = async (data) => (conn.nominated ? original(data) : old.protocol.sendData(data, old.remoteAddr));
    const sub = t.onStateChange.subscribe((s) => {
      if (s === 'connected' || s === 'closed' || s === 'failed') {
        conn.send = original;
        sub.unSubscribe();
      }
    });
  }
}

const rounds = Number(process.argv[2] ?? 24);
buildBrowserBundle();
const relay = await startDemoRelay();
const browser = await launchChromium();
try {
  const page = await browser.tab();
  await page.goto(`${relay.url}/#mic=0`);
  await page.waitForFunction('window.demo && window.demo.ready');
  const { id, participant } = (await page.evaluate('({ id: window.demo.client.session.id, participant: window.demo.client.participant })')) as { id: string; participant: string };
  const peer = [...relay.relay.rtc.peers.values()].find((p) => p.sessionId === id && p.claims.participant === participant)!;
  const ice = peer.pc.iceTransports[0]!;
  let offerAt = 0;
  let connectedAt = 0;
  ice.onStateChange.subscribe((s) => s === 'connected' && (connectedAt = performance.now()));
  peer.pc.signalingStateChange.subscribe((s) => s === 'have-remote-offer' && (offerAt = performance.now()));
  await page.evaluate(`window.__arr = []; window.demo.client.on('event', () => window.__arr.push(performance.now()));`);
  const modes = ['page', 'relay', 'relay+fix', 'none'] as const;
  const gap: Record<string, number[]> = {};
  const relaySide: Record<string, number[]> = {};
  for (let i = 0; i < rounds; i++) {
    const mode = modes[i % modes.length]!;
    await page.evaluate(`window.__arr = []; window.demo.client.say('/stream 120')`);
    await page.waitForFunction('window.__arr.length > 40');
    const t = (await page.evaluate('performance.now()')) as number;
    offerAt = 0;
    connectedAt = 0;
    const before = peer.restarts;
    if (mode === 'relay+fix') sendOnOldPairUntilNominated(peer.pc);
    if (mode === 'page') await page.evaluate(`window.demo.client.restartIce('measure')`);
    else if (mode !== 'none') peer.requestRestart('measure');
    await page.waitForFunction('window.__arr.length >= 125', null, { timeout: 15_000 });
    for (let k = 0; mode !== 'none' && k < 2000 && (peer.restarts === before || connectedAt === 0); k++) await new Promise((r) => setTimeout(r, 1));
    const g = (await page.evaluate(`(() => { const a = window.__arr.filter((x) => x > ${t} - 5); let g = 0; for (let i = 1; i < a.length; i++) g = Math.max(g, a[i] - a[i - 1]); return g; })()`)) as number;
    (gap[mode] ??= []).push(Math.round(g));
    if (mode !== 'none' && connectedAt > offerAt && offerAt > 0) (relaySide[mode] ??= []).push(Math.round(connectedAt - offerAt));
    await new Promise((r) => setTimeout(r, 300));
  }
  const med = (a: number[] = []): number | undefined => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  for (const m of modes) {
    process.stdout.write(
      `${m.padEnd(10)} page: largest event gap median ${med(gap[m])} ms ${JSON.stringify(gap[m])}` +
        (m !== 'none' ? ` | relay: offer applied → ICE connected median ${med(relaySide[m])} ms ${JSON.stringify(relaySide[m])}` : '') +
        '\n',
    );
  }
} finally {
  await browser.close();
  await relay.close();
}
