import { readFileSync } from 'node:fs';

/**
 * CPU time (user + system, ms) a process has used so far, from /proc/PID/stat (Linux; clock ticks
 * of 10 ms, the kernel's USER_HZ of 100); undefined elsewhere or once the process is gone. CPU per
 * unit of work is a fairer measure than wall-clock rates on a machine shared with other work.
 */
export function processCpuMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}
