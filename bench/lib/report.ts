/**
 * The summary of bench/run.ts: per cell and target, the median over the
 * successful repetitions of each figure, as a markdown table, then one row
 * of Petrel ÷ Postfix ratios per cell against the better Postfix variant
 * measured (default or tuned, by relay throughput). Failed runs are counted,
 * never averaged in.
 */
import type { Cell, RunRecord } from './measure';
import type { TargetName } from './targets';

type Metric = 'accept_msgs_per_s' | 'relay_msgs_per_s' | 'cpu_s_per_1000' | 'rss_peak_mb' | 'pss_peak_mb' | 'latency_p50_ms' | 'latency_p99_ms';

const COLUMNS: readonly { readonly metric: Metric; readonly head: string; readonly digits: number }[] = [
  { metric: 'accept_msgs_per_s', head: 'accepted msg/s', digits: 0 },
  { metric: 'relay_msgs_per_s', head: 'relayed msg/s', digits: 0 },
  { metric: 'cpu_s_per_1000', head: 'CPU s/1000 msg', digits: 2 },
  { metric: 'rss_peak_mb', head: 'peak RSS MB', digits: 0 },
  { metric: 'pss_peak_mb', head: 'peak PSS MB', digits: 0 },
  { metric: 'latency_p50_ms', head: 'final-250 p50 ms', digits: 1 },
  { metric: 'latency_p99_ms', head: 'p99 ms', digits: 1 },
];

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? null) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

type Medians = Partial<Record<Metric, number | null>> & { readonly ok: number; readonly runs: number };

function mediansOf(runs: readonly RunRecord[]): Medians {
  const good = runs.filter((r) => r.ok);
  const out: Partial<Record<Metric, number | null>> = {};
  for (const { metric } of COLUMNS) out[metric] = median(good.map((r) => r[metric]).filter((x): x is number => x !== null));
  return { ...out, ok: good.length, runs: runs.length };
}

const fmt = (x: number | null | undefined, digits: number): string => (x === null || x === undefined ? '–' : x.toFixed(digits));
const kb = (bytes: number): string => (bytes % 1024 === 0 ? `${bytes / 1024} KB` : `${bytes} B`);

function sameCell(r: RunRecord, c: Cell): boolean {
  return r.size === c.size && r.sessions === c.sessions && r.messages === c.messages;
}

/** Petrel's figure over the better Postfix's; for CPU, memory and latency a ratio below 1 is the better one. */
function ratioRow(m: Map<TargetName, Medians>): string | null {
  const petrel = m.get('petrel');
  const pf = (['postfix', 'postfix-tuned'] as const).map((n) => m.get(n)).filter((x): x is Medians => x !== undefined && x.ok > 0);
  const best = pf.sort((a, b) => (b.relay_msgs_per_s ?? 0) - (a.relay_msgs_per_s ?? 0))[0];
  if (!petrel || !best) return null;
  const cells = COLUMNS.map(({ metric }) => {
    const a = petrel[metric];
    const b = best[metric];
    return a === null || a === undefined || b === null || b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}×`;
  });
  return `| | | **petrel ÷ postfix** | | ${cells.join(' | ')} |`;
}

/** The table of an earlier results file (`--report FILE`): cells and targets in the order they ran. */
export function tableOfRecords(runs: readonly RunRecord[]): string {
  const cells: Cell[] = [];
  for (const r of runs) if (!cells.some((c) => sameCell(r, c))) cells.push({ size: r.size, sessions: r.sessions, messages: r.messages });
  return markdownTable(cells, [...new Set(runs.map((r) => r.target))], runs);
}

export function markdownTable(cells: readonly Cell[], targets: readonly TargetName[], runs: readonly RunRecord[]): string {
  const head = `| size | sessions | target | ok/runs | ${COLUMNS.map((c) => c.head).join(' | ')} |`;
  const rule = `|${' --- |'.repeat(4 + COLUMNS.length)}`;
  const rows: string[] = [head, rule];
  for (const c of cells) {
    const m = new Map<TargetName, Medians>();
    for (const t of targets) {
      const med = mediansOf(runs.filter((r) => r.target === t && sameCell(r, c)));
      m.set(t, med);
      rows.push(`| ${kb(c.size)} | ${c.sessions} | ${t} | ${med.ok}/${med.runs} | ${COLUMNS.map(({ metric, digits }) => fmt(med[metric], digits)).join(' | ')} |`);
    }
    const ratio = ratioRow(m);
    if (ratio) rows.push(ratio);
  }
  return rows.join('\n');
}
