/**
 * The `control` events of spoken turns, in the vocabulary users know from OpenAI's Realtime API
 * (`output_audio_buffer.*`) and RTVI (bot started/stopped speaking):
 *
 *   speech.started              agent  a turn of speech begins (committed before its first frame)
 *   speech.stopped              agent  the turn ended: `done`, or `interrupted` (with sentMs)
 *   interrupt                   any    barge-in: stop the agent's speech now, on every device
 *   output_audio_buffer.started device the device began playing the turn
 *   output_audio_buffer.stopped device the device played the turn to its end
 *   output_audio_buffer.cleared device the device stopped early (interrupt) after playing
 *                                      `playedMs` (`playedFrames`, up to `lastPlayedSeq`)
 */
import type { Json, TimelineEvent } from '../../protocol/index.js';

export const SPEECH_ACTIONS = {
  started: 'speech.started',
  stopped: 'speech.stopped',
  interrupt: 'interrupt',
  playbackStarted: 'output_audio_buffer.started',
  playbackStopped: 'output_audio_buffer.stopped',
  playbackCleared: 'output_audio_buffer.cleared',
} as const;

/** What a device reports about its playback of a turn. */
export interface PlaybackReport {
  action: 'output_audio_buffer.started' | 'output_audio_buffer.stopped' | 'output_audio_buffer.cleared';
  turn: string;
  /** Milliseconds of the turn this device actually played. */
  playedMs: number;
  playedFrames: number;
  /** RTP sequence number of the last frame played (absent if none). */
  lastPlayedSeq?: number;
  /** The device that played. */
  device: string;
}

export function controlAction(e: TimelineEvent): string | undefined {
  if (e.kind !== 'control') return undefined;
  const a = (e.data as { action?: unknown }).action;
  return typeof a === 'string' ? a : undefined;
}

export function turnOf(e: TimelineEvent): string | undefined {
  const t = (e.data as { turn?: unknown }).turn;
  return typeof t === 'string' ? t : undefined;
}

/** Reads a playback report from a control event, if it is one. */
export function asPlaybackReport(e: TimelineEvent): PlaybackReport | undefined {
  const action = controlAction(e);
  if (action !== SPEECH_ACTIONS.playbackStarted && action !== SPEECH_ACTIONS.playbackStopped && action !== SPEECH_ACTIONS.playbackCleared) return undefined;
  const d = e.data as { turn?: unknown; playedMs?: unknown; playedFrames?: unknown; lastPlayedSeq?: unknown };
  if (typeof d.turn !== 'string' || typeof d.playedMs !== 'number' || typeof d.playedFrames !== 'number') return undefined;
  return {
    action,
    turn: d.turn,
    playedMs: d.playedMs,
    playedFrames: d.playedFrames,
    ...(typeof d.lastPlayedSeq === 'number' ? { lastPlayedSeq: d.lastPlayedSeq } : {}),
    device: e.from.device,
  };
}

export function reportData(r: Omit<PlaybackReport, 'device'>): { [k: string]: Json } {
  return { ...r };
}
