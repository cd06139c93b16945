import type { Command } from 'commander';
import { loadTaskConfig, type TaskConfig } from '../config/index.js';
import {
  buildCodeDataset,
  buildDataset,
  type PackedDataset,
  renderSample,
  stepsPerEpoch,
  trainedTargets,
} from '../data/index.js';
import { loadTokenizer, type MftTokenizer } from '../tokenizer/index.js';
import { fail, jsonOutput } from '../util/index.js';
import { collect } from './collect.js';

/** Steps for the configured batch settings: max_steps when set, else num_epochs passes. */
function stepFigures(config: TaskConfig, data: PackedDataset): { perEpoch: number; total: number } {
  const perEpoch = stepsPerEpoch(data.train, config.micro_batch_size, config.gradient_accumulation_steps);
  const total = config.max_steps ?? Math.ceil(config.num_epochs * perEpoch);
  return { perEpoch, total };
}

// Rendered examples longer than this are cut (a whole source file would flood the terminal).
const EXAMPLE_CHARS = 4000;

function examples(data: PackedDataset, tok: MftTokenizer, n: number, opts: { color: boolean }) {
  const { color } = opts;
  return data.examples(n).map((s) => {
    let text = renderSample(tok, s, { color });
    if (text.length > EXAMPLE_CHARS)
      text = `${text.slice(0, EXAMPLE_CHARS)}${color ? '\x1b[39m' : ''} [... cut]`;
    return { tokens: s.ids.length, trained_tokens: trainedTargets(s.labels), text };
  });
}

async function inspect(file: string, opts: { set: string[]; json?: boolean; n: string }): Promise<void> {
  const n = parseNumber('-n', opts.n);
  if (!(Number.isInteger(n) && n >= 0)) fail('-n', `expected a count >= 0, got ${opts.n}`);
  const config = await loadTaskConfig(file, { set: opts.set });
  const tok = await loadTokenizer(config.base_model);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const data = await buildDataset(config, tok, { log: opts.json ? () => {} : log, progress: !opts.json });
  const steps = stepFigures(config, data);
  const s = data.stats;
  const color = !opts.json && process.stdout.isTTY === true && !process.env.NO_COLOR;
  const shown = examples(data, tok, n, { color });
  if (opts.json) {
    const doc = {
      dataset: config.dataset,
      task: config.task,
      sequence_len: data.seqLen,
      cache_key: data.cacheKey,
      stats: s,
      micro_batch_size: config.micro_batch_size,
      gradient_accumulation_steps: config.gradient_accumulation_steps,
      steps_per_epoch: steps.perEpoch,
      total_steps: steps.total,
      examples: shown,
    };
    process.stdout.write(jsonOutput(doc, 2));
    return;
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const v = s.validation;
  const lines = [
    `task         ${config.task} (${config.recipe.format}, loss on ${config.recipe.train_on})`,
    `dataset      ${config.dataset.join(', ')}`,
    `records      ${s.records} read (${s.train.records} train, ${v ? v.records : 0} validation${v ? ` from ${s.validationFrom === 'files' ? 'files' : 'val_set_size'}` : ''}), ${s.skippedRecords} skipped`,
    `samples      ${s.train.samples} train${v ? `, ${v.samples} validation` : ''}; ${s.truncated} cut to ${data.seqLen} tokens (truncation: ${config.truncation}), ${s.dropped} dropped`,
    `tokens       ${s.train.tokens} train, ${s.train.trainedTokens} trained${v ? `; ${v.tokens} validation, ${v.trainedTokens} trained` : ''}`,
    `packing      ${s.train.rows} rows of ${data.seqLen}, efficiency ${pct(s.train.packingEfficiency)}${v ? ` (validation: ${v.rows} rows, ${pct(v.packingEfficiency)})` : ''}${config.sample_packing ? '' : ' (sample_packing: false)'}`,
    `steps        ${steps.perEpoch} per epoch (micro_batch_size ${config.micro_batch_size} x gradient_accumulation_steps ${config.gradient_accumulation_steps}), ${steps.total} in total (${config.max_steps !== null ? `max_steps ${config.max_steps}` : `num_epochs ${config.num_epochs}`})`,
    `cache key    ${data.cacheKey.slice(0, 16)}`,
  ];
  if (s.skippedRecords > 0) lines.push(`skipped      ${s.skippedExamples.join('\n             ')}`);
  const mark = color ? 'grey' : 'between ⟦ ⟧';
  shown.forEach((e, i) => {
    lines.push(
      '',
      `--- example ${i + 1} of ${shown.length}: ${e.tokens} tokens, ${e.trained_tokens} trained (no loss: ${mark})`,
      e.text,
    );
  });
  process.stdout.write(`${lines.join('\n')}\n`);
}

function parseNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) fail(flag, `expected a number, got "${value}"`);
  return n;
}

/** `mft data inspect` and `mft data from-dir`. */
export function registerData(program: Command): void {
  const data = program.command('data').description('build and inspect datasets');

  data
    .command('inspect')
    .description('tokenize and pack the dataset of a task file; print its figures and the first examples')
    .argument('<task.yaml>', 'the task file')
    .option('--set <key=value>', 'override a task key (repeatable)', collect, [])
    .option('-n <count>', 'examples to show', '3')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      '\nTokens that carry no loss are grey on a terminal and between ⟦ ⟧ otherwise.\n\nExample:\n  $ mft data inspect configs/code_completion.yaml -n 2',
    )
    .action(inspect);

  data
    .command('from-dir <dir>')
    .description('build a code dataset ({text, path, lang} records) from a source tree')
    .requiredOption('--out <folder>', 'dataset folder to write (train.jsonl, validation.jsonl, README.md)')
    .option('--lang <names>', 'keep only these languages, comma-separated (e.g. typescript,python)')
    .option('--val-fraction <f>', 'fraction of files for validation', '0.1')
    .option('--seed <n>', 'seed of the train/validation split', '0')
    .option('--max-bytes <n>', 'skip files larger than this', String(1 << 20))
    .option('--readme-command <cmd>', 'the command the README names for regenerating the dataset')
    .option('--overwrite', 'replace a dataset an earlier mft data from-dir wrote in --out')
    .option('--json', 'print one JSON object')
    .addHelpText('after', '\nExample:\n  $ mft data from-dir . --out datasets/my_code --lang typescript')
    .action(
      (
        dir: string,
        opts: {
          out: string;
          lang?: string;
          valFraction: string;
          seed: string;
          maxBytes: string;
          readmeCommand?: string;
          overwrite?: boolean;
          json?: boolean;
        },
      ) => {
        const report = buildCodeDataset({
          dir,
          out: opts.out,
          langs: opts.lang
            ?.split(',')
            .map((s) => s.trim())
            .filter((s) => s !== ''),
          valFraction: parseNumber('--val-fraction', opts.valFraction),
          seed: parseNumber('--seed', opts.seed),
          maxBytes: parseNumber('--max-bytes', opts.maxBytes),
          readmeCommand: opts.readmeCommand,
          overwrite: opts.overwrite,
        });
        if (opts.json) {
          process.stdout.write(jsonOutput(report, 2));
          return;
        }
        const skipped = Object.entries(report.skipped)
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ');
        process.stdout.write(
          [
            `wrote ${report.out}`,
            `  train       ${report.train} files`,
            `  validation  ${report.validation} files`,
            `  bytes       ${report.bytes}`,
            `  skipped     ${skipped || 'none'}`,
            `  sha256      ${report.contentHash}`,
          ].join('\n') + '\n',
        );
      },
    );
}
