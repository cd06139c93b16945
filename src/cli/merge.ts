import { type Command, Option } from 'commander';
import { resolveModelArg } from '../hub/index.js';
import { type MergeBase, type MergeDtype, mergeAdapter, parseSize } from '../lora/merge.js';
import { openAdapter } from '../lora/open-adapter.js';
import { jsonOutput } from '../util/index.js';

interface MergeFlags {
  model: string;
  adapter: string;
  out: string;
  dtype?: MergeDtype;
  maxShardSize: string;
  checkpoint?: string;
  base: MergeBase;
  overwrite?: boolean;
  json?: boolean;
}

/** `mft merge`: fold a LoRA adapter into its base model and write a plain HF model directory. */
export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description(
      "merge a LoRA adapter into its base model (W' = W + s * B A) and write a Hugging Face model folder",
    )
    .requiredOption('--model <dir>', 'base model folder (config.json + safetensors)')
    .requiredOption('--adapter <dir>', 'adapter folder, or a run folder (uses its final adapter/)')
    .requiredOption('--out <dir>', 'folder to write; must not exist unless --overwrite')
    .addOption(
      new Option('--dtype <dtype>', "weights dtype (default: the base checkpoint's)").choices([
        'bf16',
        'fp16',
        'fp32',
      ]),
    )
    .option(
      '--max-shard-size <size>',
      'split the weights into shards of at most this size (2GB, 500MB, 1GiB)',
      '2GB',
    )
    .option('--checkpoint <best|N>', 'with a run folder: merge checkpoint-N/, or the best by eval loss')
    .addOption(
      new Option(
        '--base <base>',
        'plain: the unquantized base; dequantized: the NF4/int8 base the adapter trained on',
      )
        .choices(['plain', 'dequantized'])
        .default('plain'),
    )
    .option('--overwrite', 'replace an existing --out')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft merge --model checkpoints/base/tinystories-260k --adapter checkpoints/runs/stories --out merged/stories\n' +
        '  $ mft merge --model base --adapter checkpoints/runs/code --checkpoint best --dtype bf16 --out merged/code',
    )
    .action(async (flags: MergeFlags) => {
      const maxShardSize = parseSize(flags.maxShardSize);
      const { adapter, dir, description } = openAdapter(flags.adapter, flags.checkpoint);
      process.stderr.write(`mft: merging ${description}\n`);
      const result = mergeAdapter({
        model: await resolveModelArg(flags.model),
        adapter,
        adapterDir: dir,
        out: flags.out,
        dtype: flags.dtype,
        maxShardSize,
        base: flags.base,
        overwrite: flags.overwrite === true,
        command: ['mft', ...process.argv.slice(2)].join(' '),
        log: (line) => process.stderr.write(`mft: ${line}\n`),
      });
      if (flags.json) {
        const report = {
          out: result.out,
          adapter: dir,
          dtype: result.dtype,
          scale: result.scale,
          files: result.files,
          merged_weights: result.merged.length,
        };
        process.stdout.write(jsonOutput(report, 2));
        return;
      }
      process.stderr.write(
        `mft: ${result.merged.length} weights merged (s = ${result.scale}), ${result.dtype}, ${result.files.length} weight file(s)\n`,
      );
      process.stdout.write(`${result.out}\n`);
    });
}
