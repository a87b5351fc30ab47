import type { Command } from 'commander';
import type { CurvePoint, Summary } from './histogram.js';
import type { IntegrityReport } from './integrity.js';

export type ConfigValue = string | number | boolean | null;

/**
 * What every scenario prints with --json, exactly (see DESIGN.md, "Public surfaces"):
 * one object, the same keys for every scenario, so scripts and CI read them all alike.
 */
export interface BenchJson {
  scenario: string;
  config: Record<string, ConfigValue>;
  results: Record<string, Summary>;
  baselines: Record<string, Record<string, Summary>>;
  /** `<metric>_<percentile>`: the system under test divided by the (first) baseline. */
  ratios: Record<string, number | null>;
  integrity: IntegrityReport;
}

/** A scenario's full outcome: the JSON plus what tables and reports need besides. */
export interface BenchRun {
  json: BenchJson;
  /** Percentile curves for charts, keyed by series name ("relay", "ws-echo") then metric. */
  curves: Record<string, Record<string, CurvePoint[]>>;
  /** Series names in display order: the system under test first, then baselines. */
  series: string[];
  /** False fails the run (exit code 1): integrity errors, children that died, clients that broke. */
  ok: boolean;
  /** Human-readable findings for the table and the report (why it failed, what was odd). */
  notes: string[];
}

export interface ScenarioContext {
  /** Progress and diagnostics: always stderr. */
  progress(line: string): void;
  /** Aborted on SIGINT/SIGTERM or when a child under test dies. */
  signal: AbortSignal;
}

/** A benchmark scenario: its options (on its commander subcommand) and how to run it. */
export interface Scenario {
  name: string;
  summary: string;
  /** Adds the scenario's own options to its subcommand (the common ones are added by the CLI). */
  configure(cmd: Command): void;
  run(options: Record<string, unknown>, ctx: ScenarioContext): Promise<BenchRun>;
}

/** Checks an object against the BenchJson shape; returns the problems found (empty when valid). */
export function checkBenchJson(value: unknown): string[] {
  const problems: string[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const checkSummary = (where: string, s: unknown): void => {
    if (!isObj(s)) return void problems.push(`${where} is not an object`);
    if (typeof s['unit'] !== 'string') problems.push(`${where}.unit is not a string`);
    for (const k of ['n', 'p50', 'p95', 'p99', 'max']) if (typeof s[k] !== 'number') problems.push(`${where}.${k} is not a number`);
  };
  if (!isObj(value)) return ['not an object'];
  if (typeof value['scenario'] !== 'string') problems.push('scenario is not a string');
  if (!isObj(value['config'])) problems.push('config is not an object');
  const results = value['results'];
  if (!isObj(results)) problems.push('results is not an object');
  else for (const [k, s] of Object.entries(results)) checkSummary(`results.${k}`, s);
  const baselines = value['baselines'];
  if (!isObj(baselines)) problems.push('baselines is not an object');
  else
    for (const [name, metrics] of Object.entries(baselines)) {
      if (!isObj(metrics)) problems.push(`baselines.${name} is not an object`);
      else for (const [k, s] of Object.entries(metrics)) checkSummary(`baselines.${name}.${k}`, s);
    }
  const ratios = value['ratios'];
  if (!isObj(ratios)) problems.push('ratios is not an object');
  else for (const [k, r] of Object.entries(ratios)) if (typeof r !== 'number' && r !== null) problems.push(`ratios.${k} is not a number`);
  const integrity = value['integrity'];
  if (!isObj(integrity)) problems.push('integrity is not an object');
  else for (const k of ['sent', 'delivered', 'lost', 'duplicated', 'reordered']) if (typeof integrity[k] !== 'number') problems.push(`integrity.${k} is not a number`);
  const extra = Object.keys(value).filter((k) => !['scenario', 'config', 'results', 'baselines', 'ratios', 'integrity'].includes(k));
  if (extra.length) problems.push(`unexpected keys: ${extra.join(', ')}`);
  return problems;
}
