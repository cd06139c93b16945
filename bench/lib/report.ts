/**
 * One backend's benchmark result (the JSON written to bench/results/), its table on stdout, and
 * the ratios against an earlier result (`--compare FILE`).
 */
import type { DataResult } from '../sections/data.js';
import type { FootprintResult } from '../sections/footprint.js';
import type { InferenceResult } from '../sections/inference.js';
import type { MainJobResult } from '../sections/main-job.js';
import type { MatmulResult } from '../sections/matmul.js';
import type { ProfileResult } from '../sections/profile.js';
import type { TrainStepNoFit, TrainStepResult } from '../sections/train-step.js';
import type { Machine, Versions } from './machine.js';

export const REPORT_SCHEMA = 1;

export const MFU_DEFINITION =
  'MFU = model FLOPs of the step (formula above) / step time / the best matmul rate of the square products; ' +
  'both rates per CPU second (one tfjs thread), so a shared machine does not skew it; mfuWall uses wall time';

export interface TrainStepFigures extends TrainStepResult {
  mfu: number;
  mfuWall: number;
}

export interface BenchReport {
  schema: number;
  date: string;
  quick: boolean;
  backend: string;
  backendDetail: string;
  machine: Machine;
  versions: Versions;
  flopFormula: string;
  mfuDefinition: string;
  matmul: MatmulResult | null;
  trainSteps: TrainStepFigures[];
  /** Configurations that ran out of memory. */
  trainStepsNoFit: TrainStepNoFit[];
  inference: InferenceResult[];
  footprint: FootprintResult | null;
  profile: ProfileResult | null;
  mainJob: MainJobResult | null;
  /** Backend-independent; the same figures go into every backend's file of a run. */
  data: DataResult | null;
  failures: { job: string; error: string }[];
}

/** Columns padded to their widest cell; numbers right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  // a column of numbers (and '-' for none) is right-aligned
  const numeric = header.map(
    (_, c) =>
      rows.some((r) => typeof r[c] === 'number') &&
      rows.every((r) => typeof r[c] === 'number' || r[c] === '-'),
  );
  return cells
    .map((r) =>
      r.map((cell, c) => (numeric[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  '),
    )
    .map((line) => `  ${line.trimEnd()}`)
    .join('\n');
}

const f0 = (x: number) => Math.round(x);
const f1 = (x: number) => Number(x.toFixed(1));
const f2 = (x: number) => Number(x.toFixed(2));
const f3 = (x: number) => Number(x.toFixed(3));
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The human-readable table of one backend's report. */
export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(
    `mft benchmark — backend ${r.backend}${r.quick ? ' (quick: reduced sizes)' : ''}`,
    `  ${r.backendDetail}`,
    `  machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, load ${m.loadStart} -> ${m.loadEnd ?? '?'} (1-min avg)`,
    `  versions: node ${r.versions.node}, tfjs ${r.versions.tfjs}, mft ${r.versions.mft}${r.versions.commit ? ` (${r.versions.commit})` : ''}`,
  );
  if (r.matmul) {
    out.push('', '1) matmul (fp32)');
    out.push(
      table(
        ['product', 'shapes', 'GFLOP/s wall', 'GFLOP/s per CPU-s'],
        [...r.matmul.square, ...r.matmul.layouts].map((x) => [
          x.label,
          x.shapes,
          f2(x.gflopsWall),
          f2(x.gflopsCpu),
        ]),
      ),
    );
  }
  if (r.trainSteps.length + r.trainStepsNoFit.length > 0) {
    const s = r.trainSteps[0];
    out.push(
      '',
      `2) LoRA training step${s ? `: ${(s.params / 1e6).toFixed(1)}M params, r ${s.r} all-linear (${(s.loraParams / 1e6).toFixed(2)}M trainable)` : ''}, lossAndGrads + AdamW, one micro-batch`,
    );
    const ran = r.trainSteps.map((t) => [
      t.storage,
      t.checkpointing ? 'yes' : 'no',
      `${t.batchSize} x ${t.seqLen}`,
      f2(t.step.wallS),
      f2(t.step.cpuS),
      f1(t.tokensPerS),
      f1(t.tokensPerCpuS),
      f1(t.flops.total / 1e9),
      pct(t.mfu),
      f2(t.weights.wallS),
      f3(t.optimizer.wallS),
      t.heapMiB === null ? '-' : f0(t.heapMiB),
      f0(t.peakRssMiB),
      '',
    ]);
    const failed = r.trainStepsNoFit.map((t) => [
      t.storage,
      t.checkpointing ? 'yes' : 'no',
      `${t.batchSize} x ${t.seqLen}`,
      ...Array.from({ length: 8 }, () => '-'),
      t.heapMiB === null ? '-' : f0(t.heapMiB),
      f0(t.peakRssMiB),
      t.heapMiB === null ? 'out of memory' : 'out of memory (wasm heap full)',
    ]);
    out.push(
      table(
        [
          'storage',
          'ckpt',
          'batch',
          'step s',
          'CPU s',
          'tok/s',
          'tok/CPU-s',
          'GFLOP',
          'MFU',
          'weights s',
          'AdamW s',
          'heap MiB',
          'peak RSS MiB',
          '',
        ],
        [...ran, ...failed],
      ),
    );
    out.push(`  FLOPs: ${r.flopFormula}`, `  ${r.mfuDefinition}`);
    out.push(
      '  weights s: turning the frozen layers into fp32 tensors per step (widen / dequantize); heap: the wasm heap (it only grows; 4 GiB at most)',
    );
    for (const t of r.trainSteps) {
      if (t.tensorsAfter !== t.tensorsBefore) {
        out.push(
          `  note: ${t.tensorsAfter - t.tensorsBefore} tensors left behind by ${t.storage} steps (a leak)`,
        );
      }
    }
  }
  if (r.inference.length > 0) {
    out.push('', '3) eval forward and generation (KV cache, greedy, LoRA applied)');
    out.push(
      table(
        [
          'storage',
          'forward batch',
          'forward tok/s',
          'GFLOP/s per CPU-s',
          'prompt',
          'prefill s',
          'decode tok/s',
          'generated',
        ],
        r.inference.map((x) => [
          x.storage,
          `${x.batchSize} x ${x.seqLen}`,
          f1(x.forwardTokensPerS),
          f2(x.forwardGflopsCpu),
          x.promptTokens,
          f3(x.prefillS),
          f1(x.decodeTokensPerS),
          x.generatedTokens,
        ]),
      ),
    );
  }
  if (r.data) {
    const d = r.data;
    out.push(
      '',
      `4) data pipeline (tokenizer of ${shortPath(d.tokenizer)}, sequence_len ${d.seqLen}; dataset sha256 ${d.datasetSha256.slice(0, 12)}...)`,
    );
    out.push(
      table(
        ['input', 'MB', 'tokens', 'seconds', 'tok/s', 'packing', 'RSS growth MiB'],
        [
          [
            'github_code, buildDataset (cold)',
            f2(d.datasetBytes / 1e6),
            d.real.tokens,
            f2(d.real.build.wallS),
            f0(d.real.tokensPerS),
            pct(d.real.packingEfficiency),
            '-',
          ],
          ['github_code, from the cache', '-', d.real.tokens, f3(d.real.cacheHit.wallS), '-', '-', '-'],
          [
            'generated JSONL, reader only',
            f1(d.stream.fileMB),
            '-',
            f2(d.stream.read.wallS),
            `${f1(d.stream.mbPerS)} MB/s`,
            '-',
            f1(d.stream.rssGrowthMiB),
          ],
          [
            'generated JSONL, buildDataset',
            f1(d.pipeline.fileMB),
            d.pipeline.tokens,
            f2(d.pipeline.build.wallS),
            f0(d.pipeline.tokensPerS),
            pct(d.pipeline.packingEfficiency),
            f1(d.pipeline.rssGrowthMiB),
          ],
        ],
      ),
    );
    const st = d.real.stages;
    out.push(
      `  stages on github_code: read+parse (all records) ${f3(st.readParse.wallS)} s, tokenize ${st.records} records ${f3(st.tokenize.wallS)} s (${f0(st.tokensPerSTokenize)} tok/s), pack ${f3(st.pack.wallS)} s; pipeline RSS ${f1(d.pipeline.rssBytesPerToken)} bytes per kept token`,
    );
  }
  if (r.footprint) {
    out.push('', '5) memory: bytes per base parameter (frozen weights held outside tfjs)');
    out.push(
      table(
        ['storage', 'params', 'MiB held', 'bytes/param', 'projections bytes/param', 'build s'],
        r.footprint.rows.map((x) => [
          x.storage,
          x.params,
          f1(x.bytes / 2 ** 20),
          f3(x.bytesPerParam),
          f3(x.projectionBytesPerParam),
          f2(x.buildS),
        ]),
      ),
    );
    const side = r.footprint.dequantSide;
    out.push(
      `  quantize / dequantize a ${side}x${side} matrix (dequantize: best of 3 into a reused buffer):`,
    );
    out.push(
      table(
        ['storage', 'quantize ms', 'dequantize ms', 'M values/s', 'bytes/param'],
        r.footprint.dequant.map((x) => [
          x.storage,
          f1(1000 * x.quantizeS),
          f1(1000 * x.dequantizeS),
          f0(x.valuesPerS / 1e6),
          f3(x.bytesPerParam),
        ]),
      ),
    );
    if (r.trainSteps.length > 0) {
      const where = r.quick ? 'quick: all configurations share one process' : 'one process per configuration';
      out.push(
        `  peak RSS of the training run (${where}): ${r.trainSteps.map((t) => `${t.storage}${t.checkpointing ? '' : ' one tape'} ${t.batchSize}x${t.seqLen} ${f0(t.peakRssMiB)} MiB`).join(', ')}`,
      );
    }
  }
  if (r.mainJob) {
    const j = r.mainJob;
    const p = j.phases;
    out.push(
      '',
      `6) main job: ${shortPath(j.configFile)}${j.set.length > 0 ? ` --set ${j.set.join(' ')}` : ' as configured'} (${j.steps} steps of ${j.microBatchSize} x ${j.seqLen}, ${j.evals} evals)`,
    );
    out.push(
      table(
        ['phase', 'seconds'],
        [
          ['start-up (process, imports, config, backend, tokenizer)', f2(p.startup)],
          ['data (tokenize, pack, cache)', f2(p.data)],
          ['model load + LoRA init', f2(p.modelLoad)],
          ['training', f2(p.training)],
          ['evaluation', f2(p.evaluation)],
          ['saving (checkpoints, adapter)', f2(p.saving)],
          ['other', f2(p.other)],
          ['total wall', f2(j.totalWallS)],
        ],
      ),
    );
    out.push(
      `  training ${f1(j.trainTokensPerS)} tok/s, overall ${f1(j.overallTokensPerS)} tok/s; eval_loss ${j.baseEvalLoss} -> ${j.finalEvalLoss}`,
      `  the job as configured (${j.projected.steps} steps, ${j.projected.evals} evals) projects to ${f0(j.projected.totalS)} s (training ${f0(j.projected.trainingS)} s, evaluation ${f0(j.projected.evaluationS)} s)`,
    );
  }
  if (r.profile) {
    const p = r.profile;
    out.push(
      '',
      `profile of one training step (${p.storage}, checkpointing ${p.checkpointing ? 'on' : 'off'}): ${f2(p.profiledWallMs / 1000)} s under tf.profile, ${p.kernelCalls} kernel calls, ${f2(p.kernelMs / 1000)} s in kernels`,
    );
    out.push(
      table(
        ['cost', 'seconds', 'share', 'calls', 'GFLOP/s'],
        p.costs
          .slice(0, 10)
          .map((c) => [
            c.name,
            f3(c.ms / 1000),
            pct(c.share),
            c.calls,
            c.gflops === null ? '-' : f2(c.gflops),
          ]),
      ),
    );
    out.push(
      `  three biggest costs: ${p.costs
        .slice(0, 3)
        .map((c) => `${c.name} (${pct(c.share)})`)
        .join('; ')}`,
    );
  }
  if (r.failures.length > 0) {
    out.push('', 'FAILED jobs:');
    for (const f of r.failures) out.push(`  ${f.job}: ${f.error.split('\n')[0]}`);
  }
  return out.join('\n');
}

function shortPath(p: string): string {
  const cwd = `${process.cwd()}/`;
  return p.startsWith(cwd) ? p.slice(cwd.length) : p;
}

/** A figure worth comparing between runs. */
export interface KeyFigure {
  name: string;
  value: number;
  better: 'higher' | 'lower';
}

/** The figures `--compare` puts side by side. */
export function keyFigures(r: BenchReport): KeyFigure[] {
  const out: KeyFigure[] = [];
  const add = (name: string, value: number | null | undefined, better: 'higher' | 'lower') => {
    if (typeof value === 'number' && Number.isFinite(value)) out.push({ name, value, better });
  };
  if (r.matmul) {
    add('matmul GFLOP/s (wall)', r.matmul.peakGflopsWall, 'higher');
    add('matmul GFLOP/s (per CPU-s)', r.matmul.peakGflopsCpu, 'higher');
  }
  for (const t of r.trainSteps) {
    const k = `train ${t.storage} ${t.batchSize}x${t.seqLen}${t.checkpointing ? ' ckpt' : ' one tape'}`;
    add(`${k} tok/s`, t.tokensPerS, 'higher');
    add(`${k} tok/CPU-s`, t.tokensPerCpuS, 'higher');
    add(`${k} MFU`, t.mfu, 'higher');
    add(`${k} peak RSS MiB`, t.peakRssMiB, 'lower');
  }
  for (const x of r.inference) {
    add(`forward ${x.storage} tok/s`, x.forwardTokensPerS, 'higher');
    add(`decode ${x.storage} tok/s`, x.decodeTokensPerS, 'higher');
  }
  if (r.footprint) {
    for (const x of r.footprint.rows) add(`${x.storage} bytes/param`, x.bytesPerParam, 'lower');
    for (const x of r.footprint.dequant) add(`dequantize ${x.storage} values/s`, x.valuesPerS, 'higher');
  }
  if (r.data) {
    add('data github_code tok/s', r.data.real.tokensPerS, 'higher');
    add('data reader MB/s', r.data.stream.mbPerS, 'higher');
    add('data pipeline tok/s', r.data.pipeline.tokensPerS, 'higher');
    add('data pipeline RSS bytes/token', r.data.pipeline.rssBytesPerToken, 'lower');
  }
  if (r.mainJob) {
    const j = r.mainJob;
    add('job training tok/s', j.trainTokensPerS, 'higher');
    for (const [phase, s] of Object.entries(j.phases)) add(`job ${phase} s`, s, 'lower');
    add('job total wall s', j.totalWallS, 'lower');
  }
  return out;
}

/** Ratios new / old for every figure both reports have. */
export function formatComparison(now: BenchReport, before: BenchReport, beforeName: string): string {
  const old = new Map(keyFigures(before).map((k) => [k.name, k.value]));
  const rows: (string | number)[][] = [];
  for (const k of keyFigures(now)) {
    const o = old.get(k.name);
    if (o === undefined || o === 0) continue;
    const ratio = k.value / o;
    const better = k.better === 'higher' ? ratio > 1.05 : ratio < 1 / 1.05;
    const worse = k.better === 'higher' ? ratio < 1 / 1.05 : ratio > 1.05;
    rows.push([
      k.name,
      Number(o.toPrecision(4)),
      Number(k.value.toPrecision(4)),
      `${ratio.toFixed(2)}x`,
      better ? 'better' : worse ? 'worse' : '~',
    ]);
  }
  const head = [
    `compared with ${beforeName} (${before.backend}${before.quick ? ', quick' : ''}, ${before.date.slice(0, 10)}, ${before.versions.commit ?? 'no commit'}, load ${before.machine.loadStart})`,
  ];
  if (before.backend !== now.backend)
    head.push(`  note: backends differ (${before.backend} -> ${now.backend})`);
  if (before.quick !== now.quick) head.push('  note: one of the two is a --quick run: sizes differ');
  return [...head, table(['figure', 'before', 'now', 'now/before', ''], rows)].join('\n');
}
