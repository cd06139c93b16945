/**
 * `npm run bench` — throughput, MFU and memory of mft on this machine, per tfjs backend.
 *
 *   npm run bench                          full run (several minutes), writes bench/results/<date>-<backend>.json
 *   npm run bench -- --quick               reduced sizes, under a minute (CI runs it; asserts nothing about speed)
 *   npm run bench -- --compare FILE        also print the ratios against an earlier result
 *   npm run bench -- --compare OLD --with NEW   compare two result files, run nothing
 *   npm run bench -- --show FILE           print the table of a result file, run nothing
 *   npm run bench -- --peer [--runs N]     mft's LoRA step against PyTorch's (bench/peer.ts)
 *   options: --backend wasm,cpu  --only train,profile  --runs N  --out DIR
 *
 * Each measurement runs in a worker process (bench/worker.ts); training configurations and the
 * main job get a process of their own so their peak RSS and start-up are their own. The table
 * goes to stdout, progress to stderr. Exit 1 when a job failed, 2 on a usage mistake.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeBackends } from '../src/backend/index.js';
import { writeFileAtomic } from '../src/util/index.js';
import type { Job, JobOutcome, JobResult, WorkerTask } from './jobs.js';
import { FLOP_FORMULA } from './lib/flops.js';
import { formatJson } from './lib/json.js';
import { loadNow, machine, versions } from './lib/machine.js';
import { sig } from './lib/measure.js';
import {
  type BenchReport,
  formatComparison,
  formatReport,
  MFU_DEFINITION,
  REPORT_SCHEMA,
  type TrainStepFigures,
} from './lib/report.js';
import { backendPlan, dataJob, SECTIONS, type Section } from './plan.js';
import type { DataResult } from './sections/data.js';

interface Args {
  quick: boolean;
  show: string | null;
  compare: string | null;
  with: string | null;
  backends: string[] | null;
  only: Set<Section>;
  runs: number | undefined;
  out: string | null;
}

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\n(see the comment at the top of bench/run.ts)\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    quick: false,
    show: null,
    compare: null,
    with: null,
    backends: null,
    only: new Set(SECTIONS),
    runs: undefined,
    out: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--quick') args.quick = true;
    else if (a === '--compare') args.compare = value();
    else if (a === '--show') args.show = value();
    else if (a === '--with') args.with = value();
    else if (a === '--backend') args.backends = value().split(',');
    else if (a === '--out') args.out = value();
    else if (a === '--runs') {
      args.runs = Number(value());
      if (!Number.isInteger(args.runs) || args.runs < 1) usage('--runs needs a positive integer');
    } else if (a === '--only') {
      const names = value().split(',');
      const bad = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
      if (bad.length > 0)
        usage(`--only: unknown section ${bad.join(', ')} (sections: ${SECTIONS.join(', ')})`);
      args.only = new Set(names as Section[]);
    } else usage(`unknown option ${a}`);
  }
  if (args.with && !args.compare) usage('--with needs --compare OLD');
  return args;
}

function readReport(path: string): BenchReport {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as BenchReport;
    if (r.schema !== REPORT_SCHEMA)
      usage(`${path}: result schema ${r.schema}, this benchmark writes ${REPORT_SCHEMA}`);
    return r;
  } catch (e) {
    return usage(`cannot read ${path}: ${(e as Error).message}`);
  }
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

function describe(job: Job): string {
  switch (job.kind) {
    case 'train-step':
      return `train-step ${job.storage} ${job.batchSize}x${job.seqLen}${job.checkpointing ? ' checkpointing' : ' one tape'}`;
    case 'inference':
    case 'profile':
      return `${job.kind} ${job.storage}`;
    default:
      return job.kind;
  }
}

/** Run a group of jobs in a fresh worker process; returns one outcome per job. */
function runGroup(backend: string, jobs: Job[], scratch: string): JobOutcome[] {
  const id = Math.random().toString(36).slice(2, 8);
  const taskPath = join(scratch, `task-${id}.json`);
  const outPath = join(scratch, `out-${id}.json`);
  const task: WorkerTask = { backend, jobs };
  writeFileSync(taskPath, JSON.stringify(task));
  const t0 = performance.now();
  process.stderr.write(`[${backend}] ${jobs.map(describe).join(', ')} ...`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', WORKER, taskPath, outPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  let outcomes: JobOutcome[] = [];
  try {
    outcomes = JSON.parse(readFileSync(outPath, 'utf8')) as JobOutcome[];
  } catch {
    // the worker died before writing (out of memory, a crash): every job without an outcome failed
  }
  const why = `worker exited with ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`;
  for (const job of jobs.slice(outcomes.length)) outcomes.push({ ok: false, job, error: why });
  for (const o of outcomes)
    if (!o.ok) process.stderr.write(`[${backend}] FAILED ${describe(o.job)}: ${o.error}\n`);
  return outcomes;
}

function assemble(
  backend: string,
  detail: string,
  quick: boolean,
  outcomes: JobOutcome[],
  data: DataResult | null,
  dataFailures: BenchReport['failures'],
): BenchReport {
  const results: JobResult[] = outcomes.flatMap((o) => (o.ok ? [o.result] : []));
  const of = <K extends JobResult['kind']>(kind: K) =>
    results.filter((r): r is Extract<JobResult, { kind: K }> => r.kind === kind);
  const matmul = of('matmul')[0] ?? null;
  const steps = of('train-step');
  const trainSteps: TrainStepFigures[] = steps
    .flatMap((t) => (t.fits ? [t] : []))
    .map((t) => ({
      ...t,
      mfu: matmul ? sig(t.gflopsCpu / matmul.peakGflopsCpu, 3) : Number.NaN,
      mfuWall: matmul ? sig(t.gflopsWall / matmul.peakGflopsWall, 3) : Number.NaN,
    }));
  return {
    schema: REPORT_SCHEMA,
    date: new Date().toISOString(),
    quick,
    backend,
    backendDetail: detail,
    machine: machine(),
    versions: versions(),
    flopFormula: FLOP_FORMULA,
    mfuDefinition: MFU_DEFINITION,
    matmul,
    trainSteps,
    trainStepsNoFit: steps.flatMap((t) => (t.fits ? [] : [t])),
    inference: of('inference'),
    footprint: of('footprint')[0] ?? null,
    profile: of('profile')[0] ?? null,
    mainJob: of('main-job')[0] ?? null,
    data,
    failures: [
      ...dataFailures,
      ...outcomes.flatMap((o) => (o.ok ? [] : [{ job: describe(o.job), error: o.error }])),
    ],
  };
}

async function main(): Promise<number> {
  if (process.argv.includes('--peer')) return (await import('./peer.js')).runPeer(process.argv.slice(2));
  const args = parseArgs(process.argv.slice(2));
  if (args.show) {
    process.stdout.write(`${formatReport(readReport(args.show))}\n`);
    return 0;
  }
  if (args.compare && args.with) {
    process.stdout.write(
      `${formatComparison(readReport(args.with), readReport(args.compare), args.compare)}\n`,
    );
    return 0;
  }
  const before = args.compare ? readReport(args.compare) : null;
  const started = machine();
  const probes = await probeBackends();
  const available = probes.filter((p) => p.available).map((p) => p.name as string);
  for (const b of args.backends ?? []) {
    if (!probes.some((p) => p.name === b)) usage(`unknown backend ${b} (wasm, cpu, tensorflow)`);
    if (!available.includes(b)) {
      usage(`backend ${b} is not available here: ${probes.find((p) => p.name === b)?.detail}`);
    }
  }
  const backends = args.backends ?? available;
  process.stderr.write(
    `bench: ${args.quick ? 'quick' : 'full'} run on ${backends.join(', ')}; ${started.cpu}, ${started.cores} cores, load ${started.loadStart}\n`,
  );

  const scratch = mkdtempSync(join(tmpdir(), 'mft-bench-'));
  const outDir = resolve(args.out ?? (args.quick ? join(tmpdir(), 'mft-bench-results') : RESULTS));
  let failed = false;
  try {
    // the data pipeline does not depend on the backend: measured once, reported with each backend
    let data: DataResult | null = null;
    const dataFailures: BenchReport['failures'] = [];
    if (args.only.has('data')) {
      const [o] = runGroup('none', [dataJob(args.quick)], scratch);
      if (o?.ok && o.result.kind === 'data') data = o.result;
      else if (o && !o.ok) dataFailures.push({ job: 'data', error: o.error });
    }
    mkdirSync(outDir, { recursive: true });
    const day = new Date().toISOString().slice(0, 10);
    for (const backend of backends) {
      const outcomes = backendPlan(backend, args.quick, args.only, args.runs).flatMap((group) =>
        runGroup(backend, group, scratch),
      );
      const detail = probes.find((p) => p.name === backend)?.detail ?? '';
      const report = assemble(backend, detail, args.quick, outcomes, data, dataFailures);
      report.machine.loadStart = started.loadStart;
      report.machine.loadEnd = loadNow();
      failed ||= report.failures.length > 0;
      const file = join(outDir, `${day}-${backend}${args.quick ? '-quick' : ''}.json`);
      writeFileAtomic(file, formatJson(report));
      process.stdout.write(`${formatReport(report)}\n\nwritten: ${file}\n\n`);
      if (before) process.stdout.write(`${formatComparison(report, before, args.compare!)}\n\n`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
