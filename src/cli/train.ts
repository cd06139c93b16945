import { relative } from 'node:path';
import type { Command } from 'commander';
import { loadTaskConfig } from '../config/index.js';
import { exitCodeFor, formatDuration, type TrainResult, train } from '../train/index.js';
import { jsonOutput } from '../util/index.js';
import { collect } from './collect.js';
import { mftInvocation } from './invocation.js';

/** A path as typed from the current directory. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
}

/**
 * The closing summary: time, tokens, losses, paths, and what to run next.
 * @param sets the `--set` arguments of this command, repeated in the resume command
 * @param mft how the printed commands start (`npx mft` in a clone, `mft` when installed)
 */
export function summaryLines(r: TrainResult, sets: string[] = [], mft: string = mftInvocation()): string[] {
  const lines: string[] = [];
  const tps = r.elapsed > 0 ? Math.round(r.processedTokens / r.elapsed) : 0;
  lines.push(
    r.interrupted
      ? `stopped by ${r.interrupted} at step ${r.step}/${r.totalSteps} after ${formatDuration(r.elapsed)}`
      : `trained ${r.step} steps in ${formatDuration(r.elapsed)}`,
  );
  lines.push(`tokens     ${r.trainedTokens} trained, ${r.processedTokens} processed (${tps} tok/s overall)`);
  if (Number.isFinite(r.lastLoss)) lines.push(`loss       ${r.lastLoss.toFixed(4)} (last step)`);
  const threads = r.workers.count > 1 ? `${r.workers.count} worker threads` : 'the main thread';
  lines.push(`compute    ${r.backend} on ${threads} (${r.workers.reason})`);
  const evals = [
    r.baseEvalLoss !== null ? `base ${r.baseEvalLoss.toFixed(4)}` : null,
    r.finalEvalLoss !== null ? `last ${r.finalEvalLoss.toFixed(4)}` : null,
    r.bestEvalLoss !== null ? `best ${r.bestEvalLoss.toFixed(4)} at step ${r.bestStep}` : null,
  ].filter((x) => x !== null);
  if (evals.length > 0) lines.push(`eval_loss  ${evals.join(', ')}`);
  lines.push(`run        ${shown(r.runDir)}`);
  if (r.lastCheckpoint) lines.push(`checkpoint ${shown(r.lastCheckpoint)}`);
  if (r.adapterDir) {
    lines.push(`adapter    ${shown(r.adapterDir)}`);
    lines.push('next:');
    lines.push(
      `  ${mft} eval --model ${shown(r.baseModel)} --adapter ${shown(r.adapterDir)} ${shown(r.configFile)} --compare`,
    );
    lines.push(
      `  ${mft} merge --model ${shown(r.baseModel)} --adapter ${shown(r.runDir)} --out ${shown(r.runDir)}-merged`,
    );
  } else {
    lines.push('resume with:');
    const setArgs = sets.map((kv) => ` --set ${/^[\w.=:/+-]+$/.test(kv) ? kv : JSON.stringify(kv)}`).join('');
    lines.push(`  ${mft} train ${shown(r.configFile)}${setArgs} --resume ${shown(r.runDir)}`);
  }
  return lines;
}

/** `mft train`: fine-tune a LoRA adapter as a task file says. */
export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('fine-tune a LoRA / QLoRA adapter as a task file says; writes a run directory')
    .argument('<task>', 'task file (YAML)')
    .option('--set <key=value>', 'override a task key, e.g. --set max_steps=20 (repeatable)', collect, [])
    .option('--output-dir <dir>', 'run directory (default: output_dir of the task)')
    .option('--resume [dir]', 'continue the newest checkpoint of the run (or of the run / checkpoint DIR)')
    .option('--overwrite', 'replace an earlier run in the output directory')
    .option(
      '--allow-data-change',
      'with --resume: continue although the dataset changed since the checkpoint',
    )
    .option('--json', 'print the summary as one JSON object')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  $ mft train configs/code_completion.yaml',
        '  $ mft train configs/code_completion.yaml --set quantization=nf4 --set max_steps=50',
        '  $ mft train configs/code_completion.yaml --resume checkpoints/runs/code_completion-20250101-120000',
        '',
        'Progress goes to stderr; SIGINT / SIGTERM finish the current step, save a checkpoint and exit 130 / 143.',
      ].join('\n'),
    )
    .action(
      async (
        task: string,
        opts: {
          set: string[];
          outputDir?: string;
          resume?: string | true;
          overwrite?: boolean;
          allowDataChange?: boolean;
          json?: boolean;
        },
      ) => {
        const config = await loadTaskConfig(task, { set: opts.set });
        const result = await train(config, {
          outputDir: opts.outputDir,
          resume: opts.resume,
          overwrite: opts.overwrite,
          allowDataChange: opts.allowDataChange,
        });
        if (opts.json) process.stdout.write(jsonOutput(result));
        else process.stdout.write(`${summaryLines(result, opts.set).join('\n')}\n`);
        process.exitCode = result.interrupted ? exitCodeFor(result.interrupted) : 0;
      },
    );
}
