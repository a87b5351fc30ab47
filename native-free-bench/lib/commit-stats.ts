/**
 * The relay's store commits as its /metrics reports them (`lifeline_commit_*`): how many, how
 * many events each carried, and how long they took. Prometheus histograms are cumulative, so a
 * scenario takes one snapshot before its measured phase and one after, and subtracts.
 */
export interface CommitStats {
  commits: number;
  entries: number;
  seconds: number;
  /** Commits that took longer than 1 ms, 2 ms and 100 ms (histogram bucket bounds). */
  over1ms: number;
  over2ms: number;
  over100ms: number;
}

export async function commitStats(url: string): Promise<CommitStats> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  const value = (name: string): number => values.get(name) ?? 0;
  const count = value('lifeline_commit_seconds_count');
  const over = (le: string): number => count - value(`lifeline_commit_seconds_bucket{le="${le}"}`);
  return {
    commits: value('lifeline_commit_batch_entries_count'),
    entries: value('lifeline_commit_batch_entries_sum'),
    seconds: value('lifeline_commit_seconds_sum'),
    over1ms: over('0.001'),
    over2ms: over('0.002'),
    over100ms: over('0.1'),
  };
}

export function commitStatsBetween(before: CommitStats, after: CommitStats): CommitStats {
  return {
    commits: after.commits - before.commits,
    entries: after.entries - before.entries,
    seconds: after.seconds - before.seconds,
    over1ms: after.over1ms - before.over1ms,
    over2ms: after.over2ms - before.over2ms,
    over100ms: after.over100ms - before.over100ms,
  };
}

/** One line for a scenario's notes. */
export function describeCommits(c: CommitStats): string {
  if (c.commits === 0) return 'no store commits';
  const share = (n: number): string => `${((n / c.commits) * 100).toFixed(1)} %`;
  return (
    `${c.commits} commits, ${(c.entries / c.commits).toFixed(1)} events per commit, mean ${((c.seconds / c.commits) * 1000).toFixed(3)} ms; ` +
    `over 1 ms: ${share(c.over1ms)}, over 2 ms: ${share(c.over2ms)}, over 100 ms: ${c.over100ms}`
  );
}
