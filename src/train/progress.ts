/**
 * What a person watching `mft train` sees, on stderr (stdout stays for results):
 * on a TTY a cli-progress bar (step / total, epoch, smoothed loss labelled `ema loss`, lr, tokens/s,
 * ETA, last eval loss; narrowed to the terminal's width); otherwise one plain line per `logging_steps`, like
 *
 *   step 120/1000  epoch 0.45  loss 1.8342  lr 1.9e-04  grad_norm 0.532  tok/s 812  eta 3m12s
 */
import cliProgress from 'cli-progress';

export interface StepReport {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
}

export interface Progress {
  /** The run starts (or resumes) at `step` of `totalSteps`. */
  start(totalSteps: number, step: number): void;
  /** A step finished; `logged` says it is a `logging_steps` step. */
  step(report: StepReport, logged: boolean): void;
  /** An evaluation finished. */
  eval(step: number, evalLoss: number): void;
  /** A message line (checkpoint written, warning...). */
  note(line: string): void;
  stop(): void;
}

/** `3m12s`, `1h04m`, `42s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The plain log line of a step (also used as the TTY bar's payload values). */
export function formatStepLine(r: StepReport, etaSeconds: number): string {
  return [
    `step ${r.step}/${r.totalSteps}`,
    `epoch ${r.epoch.toFixed(2)}`,
    `loss ${r.loss.toFixed(4)}`,
    `lr ${r.lr.toExponential(1)}`,
    `grad_norm ${r.gradNorm.toPrecision(3)}`,
    `tok/s ${Math.round(r.tokensPerSecond)}`,
    `eta ${formatDuration(etaSeconds)}`,
  ].join('  ');
}

/** Estimates the remaining time from the steps made since this process started. */
class Eta {
  private t0 = 0;
  private s0 = 0;
  begin(step: number): void {
    this.t0 = performance.now();
    this.s0 = step;
  }
  seconds(step: number, total: number): number {
    const done = step - this.s0;
    if (done <= 0) return Number.NaN;
    return (((performance.now() - this.t0) / 1000) * (total - step)) / done;
  }
}

/** One line per logged step, for logs and pipes. */
export function plainProgress(write: (line: string) => void): Progress {
  const eta = new Eta();
  return {
    start(totalSteps, step) {
      eta.begin(step);
      write(step > 0 ? `resuming at step ${step}/${totalSteps}` : `training ${totalSteps} steps`);
    },
    step(r, logged) {
      if (logged) write(formatStepLine(r, eta.seconds(r.step, r.totalSteps)));
    },
    eval(step, evalLoss) {
      write(
        `eval  step ${step}  eval_loss ${evalLoss.toFixed(4)}  eval_perplexity ${Math.exp(evalLoss).toPrecision(5)}`,
      );
    },
    note: write,
    stop() {},
  };
}

/**
 * The bar's format for a terminal `columns` wide: the richest that fits, dropping eval, tok/s, lr
 * and the epoch (in that order) and then shrinking the bar, so the ETA is never cut off. The loss
 * shown is labelled `ema loss`: a moving average of the step losses, not the last step's loss the
 * summary prints.
 */
export function barFormat(columns: number, totalSteps: number): { format: string; barsize: number } {
  const parts = [
    'epoch {epoch}',
    'ema loss {loss}',
    'lr {lr}',
    'tok/s {tps}',
    'eta {eta_formatted}',
    'eval {eval}',
  ];
  const digits = String(totalSteps).length;
  // the widest each field gets when rendered
  const widths: Record<string, number> = {
    value: digits,
    total: digits,
    epoch: 6,
    loss: 7,
    lr: 7,
    tps: 7,
    eta_formatted: 7,
    eval: 7,
  };
  const width = (format: string, barsize: number) =>
    format
      .replace('{bar}', 'x'.repeat(barsize))
      .replace(/\{(\w+)\}/g, (_, k: string) => 'x'.repeat(widths[k] ?? 0)).length;
  const dropOrder = ['eval {eval}', 'tok/s {tps}', 'lr {lr}', 'epoch {epoch}'];
  let kept = parts;
  for (let drop = 0; ; drop++) {
    const format = `step {value}/{total} [{bar}] ${kept.join(' | ')}`;
    for (const barsize of [24, 16, 10, 6]) {
      // one column spare: a line exactly as wide as the terminal wraps on some
      if (width(format, barsize) < columns) return { format, barsize };
    }
    if (drop >= dropOrder.length) return { format, barsize: 6 };
    kept = kept.filter((p) => p !== dropOrder[drop]);
  }
}

/** A cli-progress bar on a terminal stream; notes are printed above it. */
export function barProgress(stream: NodeJS.WriteStream): Progress {
  let multi = newMultiBar(stream, 100);
  let bar: cliProgress.SingleBar | null = null;
  let smoothed = Number.NaN;
  let lastEval = '-';
  return {
    start(totalSteps, step) {
      multi = newMultiBar(stream, totalSteps);
      bar = multi.create(totalSteps, step, { epoch: '0.00', loss: '-', lr: '-', tps: '-', eval: lastEval });
    },
    step(r) {
      // exponential moving average of the step loss, for a readable trend
      if (Number.isFinite(r.loss)) smoothed = Number.isNaN(smoothed) ? r.loss : 0.9 * smoothed + 0.1 * r.loss;
      bar?.update(r.step, {
        epoch: r.epoch.toFixed(2),
        loss: smoothed.toFixed(4),
        lr: r.lr.toExponential(1),
        tps: Math.round(r.tokensPerSecond),
        eval: lastEval,
      });
    },
    eval(step, evalLoss) {
      lastEval = evalLoss.toFixed(4);
      multi.log(
        `eval  step ${step}  eval_loss ${lastEval}  eval_perplexity ${Math.exp(evalLoss).toPrecision(5)}\n`,
      );
      bar?.update({ eval: lastEval });
    },
    note(line) {
      multi.log(`${line}\n`);
    },
    stop() {
      multi.stop();
    },
  };
}

function newMultiBar(stream: NodeJS.WriteStream, totalSteps: number): cliProgress.MultiBar {
  const { format, barsize } = barFormat(stream.columns ?? 80, totalSteps);
  return new cliProgress.MultiBar(
    {
      stream,
      format,
      barsize,
      hideCursor: true,
      // signals are ours: the run finishes its step and saves before stopping
      gracefulExit: false,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
}

/** The bar on a TTY, plain lines otherwise. */
export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  return stream.isTTY ? barProgress(stream) : plainProgress((line) => stream.write(`${line}\n`));
}
