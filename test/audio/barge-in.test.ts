import { describe, expect, it } from 'vitest';
import type { LifelineSession, TimelineEvent } from '../../src/sdk/index.js';
import { AgentSpeaker } from '../../src/sdk/audio/speaker.js';
import type { PlaybackReport } from '../../src/sdk/audio/control.js';
import { SpeechPlayer } from '../../src/sdk/audio/player.js';
import type { SkippedSpeech } from '../../src/sdk/audio/player.js';
import { waitFor } from '../support/wait.js';
import { opusTone, rtcRelayPerTest, rtcSession } from './helpers.js';

interface Device {
  session: LifelineSession;
  player: SpeechPlayer;
  played: { seq: number; turn: string }[];
  /** Sequence numbers of the agent's frames this device received from the timeline. */
  seqs: number[];
  interrupted?: Omit<PlaybackReport, 'device'>;
}

describe('barge-in', () => {
  const fx = rtcRelayPerTest();

  async function device(): Promise<Device> {
    const session = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    fx.sessions.push(session);
    const player = new SpeechPlayer(session);
    const d: Device = { session, player, played: [], seqs: [] };
    player.on('play', (f, turn) => d.played.push({ seq: f.rtpSeq, turn }));
    player.on('interrupted', (report) => (d.interrupted = report));
    session.on('event', (e: TimelineEvent) => {
      if (e.kind === 'audio.frame' && e.from.role === 'agent') d.seqs.push((e.data as { rtpSeq: number }).rtpSeq);
    });
    return d;
  }

  it('an interrupt stops playback on two devices, and each reports exactly what it played', async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    fx.sessions.push(agent);
    const speaker = new AgentSpeaker(agent);
    const reports: PlaybackReport[] = [];
    speaker.on('playback', (p) => reports.push(p));
    const phone = await device();
    const laptop = await device();

    const packets = opusTone(24000, 330, 3000);
    const spoken = speaker.speak(packets, { turn: 'turn-1' });
    await waitFor(() => phone.played.length >= 10 && laptop.played.length >= 10, { message: 'both devices playing' });
    await phone.player.interrupt();
    const result = await spoken;
    expect(result.interrupted).toBe(true);
    expect(result.sentMs).toBeLessThan(3000);
    await waitFor(() => phone.interrupted && laptop.interrupted, { message: 'both devices stopped' });
    await waitFor(() => reports.filter((p) => p.action === 'output_audio_buffer.cleared').length === 2, { message: 'two cleared reports' });
    // The last frame the agent sent before it stopped has reached both devices (after the
    // interrupt), and was not played.
    const lastSent = speaker.publisher.nextSeq - 1;
    await waitFor(() => phone.seqs.includes(lastSent) && laptop.seqs.includes(lastSent), { message: `the last frame (${lastSent}) at both devices` });
    const started = reports.filter((p) => p.action === 'output_audio_buffer.started');
    expect(new Set(started.map((p) => p.device))).toEqual(new Set([phone.session.device, laptop.session.device]));

    for (const d of [phone, laptop]) {
      const report = reports.find((p) => p.action === 'output_audio_buffer.cleared' && p.device === d.session.device)!;
      expect(report.turn).toBe('turn-1');
      expect(report.playedFrames).toBe(d.played.length);
      expect(report.playedMs).toBe(d.played.length * 20);
      expect(report.lastPlayedSeq).toBe(d.played.at(-1)!.seq);
      expect(d.interrupted).toEqual({ action: 'output_audio_buffer.cleared', turn: 'turn-1', playedMs: report.playedMs, playedFrames: report.playedFrames, lastPlayedSeq: report.lastPlayedSeq });
      // Played in order (a frame the network lost and a resend brought too late is skipped,
      // never played out of order), and less than the whole turn.
      const seqs = d.played.map((p) => p.seq);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
      expect(seqs.length).toBeLessThan(packets.length);
      expect(d.player.current?.active).toBe(false);
    }
    speaker.close();
  });

  it('a device cut off from the timeline replays a short gap and skips a long one, with its transcript', async () => {
    const agent = await rtcSession(fx.r, fx.sid, 'bot', 'agent');
    fx.sessions.push(agent);
    const speaker = new AgentSpeaker(agent);
    const reader = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    fx.sessions.push(reader);
    // The device joins late: the turn's audio is already in the timeline, as after a blip.
    const packets = opusTone(16000, 440, 1500);
    const speaking = speaker.speak(packets, { turn: 'turn-2' });
    for (const word of ['Hello ', 'there, ', 'how ', 'can ', 'I ', 'help?']) {
      await agent.sendText(word, { id: 'turn-2' });
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await speaking;
    const late = await rtcSession(fx.r, fx.sid, 'alice', 'user');
    fx.sessions.push(late);
    const player = new SpeechPlayer(late, { replayUpToMs: 400 });
    const skipped: SkippedSpeech[] = [];
    const played: number[] = [];
    player.on('skipped', (s) => skipped.push(s));
    player.on('play', (f) => played.push(f.rtpSeq));
    await waitFor(() => player.current?.ended && player.queuedMs === 0 && !player.current.active, { message: 'turn finished' });
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.frames + played.length).toBe(packets.length);
    expect(skipped[0]!.ms).toBe(skipped[0]!.frames * 20);
    // What was kept is the live edge of each read of the backlog: a fraction of the turn.
    expect(played.length).toBeLessThan(packets.length / 2);
    expect(skipped[0]!.text.length).toBeGreaterThan(0);
    expect('Hello there, how can I help?').toContain(skipped[0]!.text);
    speaker.close();
  });
});
