/**
 * `lifeline bench <scenario>`: latency benchmarks of the relay, each with its baseline measured in
 * the same run. Pure TypeScript: the relay and the baselines run as child processes on loopback.
 *
 *   lifeline bench tokens --sessions 10 --rate 50 --duration 10 --json
 *   lifeline bench tokens --transport webrtc --json
 *   lifeline bench throughput --transport webrtc --json
 *   npm run bench -- tokens --store memory --report out/
 *   node --import tsx native-free-bench/cli.ts --help
 *
 * Exit codes: 0 success, 1 the run failed (integrity errors, a child died), 2 usage or start-up error.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { installCleanup } from './lib/children.js';
import { renderTable, shellCommand, writeReport } from './lib/report.js';
import type { BenchRun, Scenario } from './lib/result.js';
import { audioScenario } from './scenarios/audio.js';
import { clusterScenario } from './scenarios/cluster.js';
import { failoverScenario } from './scenarios/failover.js';
import { httpScenario } from './scenarios/http.js';
import { reconnectScenario } from './scenarios/reconnect.js';
import { throughputScenario } from './scenarios/throughput.js';
import { tokensScenario } from './scenarios/tokens.js';

export const SCENARIOS: readonly Scenario[] = [tokensScenario, throughputScenario, reconnectScenario, failoverScenario, audioScenario, httpScenario, clusterScenario];
/** Scenarios designed but not written yet; listed by --help so nobody looks for them in vain. */
const PLANNED: string[] = [];

function buildProgram(onRun: (scenario: Scenario, opts: Record<string, unknown>) => Promise<void>): Command {
  const program = new Command('lifeline bench')
    .description('latency and throughput benchmarks with baselines in the same run (relay and baselines run as child processes on 127.0.0.1)')
    .usage('<scenario> [options]')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    })
    .showHelpAfterError('(add --help for the scenarios and their options)')
    .addHelpText(
      'after',
      (PLANNED.length > 0 ? `\nPlanned scenarios (not yet available): ${PLANNED.join(', ')}.\n` : '\n') +
        'Common options: --json (one JSON object on stdout), --report DIR (Markdown + SVG).\n' +
        'Progress goes to stderr. Exit code 1 when integrity checks fail.\n',
    );
  for (const scenario of SCENARIOS) {
    const cmd = program
      .command(scenario.name)
      .description(scenario.summary)
      .option('--json', 'print exactly one JSON object on stdout', false)
      .option('--report <dir>', 'write <dir>/<scenario>.md and <dir>/<scenario>.svg');
    scenario.configure(cmd);
    cmd.action(async (opts: Record<string, unknown>) => onRun(scenario, opts));
  }
  return program;
}

/**
 * Runs the bench CLI with `args` (without the node/script prefix); resolves with the exit code.
 * Never calls process.exit itself (except on SIGINT/SIGTERM, after killing its children).
 */
export async function runBenchCli(args: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram(async (scenario, opts) => {
    const uninstall = installCleanup();
    const abort = new AbortController();
    let run: BenchRun;
    try {
      run = await scenario.run(opts, {
        progress: (line) => process.stderr.write(`${line}\n`),
        signal: abort.signal,
      });
    } catch (err) {
      process.stderr.write(`bench ${scenario.name}: ${err instanceof Error ? err.message : String(err)}\n`);
      code = 2;
      return;
    } finally {
      uninstall();
    }
    if (opts['json']) {
      process.stdout.write(JSON.stringify(run.json) + '\n');
      // The table carries the notes; with --json they go to stderr, as the progress lines do.
      if (run.ok) for (const n of run.notes) process.stderr.write(`bench ${scenario.name}: ${n}\n`);
    } else process.stdout.write(renderTable(run));
    if (typeof opts['report'] === 'string') {
      const files = writeReport(resolve(opts['report']), run, shellCommand(['lifeline', 'bench', ...args]));
      process.stderr.write(`bench ${scenario.name}: wrote ${files.join(', ')}\n`);
    }
    if (!run.ok) {
      for (const n of run.notes) process.stderr.write(`bench ${scenario.name}: ${n}\n`);
      process.stderr.write(`bench ${scenario.name}: FAILED\n`);
      code = 1;
    }
  });
  if (args.length === 0) {
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return 0;
      return 2;
    }
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  return code;
}

function isEntryModule(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryModule()) {
  runBenchCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Safety net: if some handle outlives the run (a leaked timer or socket), do not hang.
      // Unref'd, so it never delays a process that is free to exit.
      setTimeout(() => {
        process.stderr.write('bench: handles still open after the run; exiting\n');
        process.exit(code);
      }, 3000).unref();
    },
    (err: unknown) => {
      process.stderr.write(`bench: ${String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
