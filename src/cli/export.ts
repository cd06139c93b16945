import { existsSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { exportGguf, type GgufType } from '../export/gguf-model.js';
import { resolveModelArg } from '../hub/index.js';
import { resolveAdapterDir } from '../lora/adapter-dir.js';
import { loadAdapter } from '../lora/peft-adapter.js';
import { fail } from '../util/index.js';

interface ExportGgufFlags {
  model: string;
  adapter?: string;
  checkpoint?: string;
  out: string;
  type: GgufType;
  loraOnly?: boolean;
  overwrite?: boolean;
}

/** `mft export gguf`: a model (adapter merged in) or an adapter alone as a GGUF file for llama.cpp. */
export function registerExport(program: Command): void {
  const exp = program
    .command('export')
    .description('write a model in another format (gguf: llama.cpp, ollama)');
  exp
    .command('gguf')
    .description('write the model, with an adapter merged in, or the adapter alone (--lora-only) as GGUF')
    .requiredOption('--model <dir>', 'base model folder (config.json, safetensors, tokenizer.json)')
    .option('--adapter <dir>', 'adapter folder, or a run folder (uses its final adapter/)')
    .option('--checkpoint <best|N>', 'with a run folder: checkpoint-N/, or the best by eval loss')
    .requiredOption('--out <file>', 'GGUF file to write; must not exist unless --overwrite')
    .addOption(
      new Option('--type <type>', 'tensor type of the 2-D weights')
        .choices(['f32', 'f16', 'q8_0'])
        .default('f16'),
    )
    .option('--lora-only', 'write the adapter alone as a GGUF LoRA adapter (llama.cpp --lora)')
    .option('--overwrite', 'replace an existing --out')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ mft export gguf --model checkpoints/base/tinystories-260k --adapter checkpoints/runs/stories --out stories.gguf --type q8_0\n' +
        '  $ mft export gguf --model base --adapter checkpoints/runs/code --lora-only --out code-lora.gguf',
    )
    .action(async (flags: ExportGgufFlags) => {
      if (existsSync(flags.out) && !flags.overwrite) {
        fail('--out', `${flags.out} already exists`, 'choose another file or pass --overwrite');
      }
      if (flags.loraOnly && !flags.adapter) fail('--lora-only', 'needs --adapter', 'pass --adapter DIR');
      let adapter: { adapter: ReturnType<typeof loadAdapter>; dir: string } | undefined;
      if (flags.adapter) {
        const { dir, description } = resolveAdapterDir(flags.adapter, flags.checkpoint);
        process.stderr.write(`mft: ${flags.loraOnly ? 'exporting' : 'merging'} ${description}\n`);
        adapter = { adapter: loadAdapter(dir), dir };
      }
      const result = await exportGguf({
        model: await resolveModelArg(flags.model),
        adapter,
        out: flags.out,
        type: flags.type,
        loraOnly: flags.loraOnly === true,
        log: (line) => process.stderr.write(`mft: ${line}\n`),
      });
      process.stderr.write(`mft: ${result.tensors} tensors, ${result.bytes} bytes (${flags.type})\n`);
      process.stdout.write(`${result.out}\n`);
    });
}
