import type { Command } from 'commander';
import { convertLlama2c } from '../convert/llama2c.js';
import { jsonOutput } from '../util/index.js';

/** `mft convert llama2c`: a llama2.c checkpoint + SentencePiece tokenizer -> an HF model folder. */
export function registerConvert(program: Command): void {
  const convert = program
    .command('convert')
    .description('convert other checkpoint formats to Hugging Face folders');

  convert
    .command('llama2c')
    .description('convert a legacy llama2.c checkpoint and its tokenizer.model to a LlamaForCausalLM folder')
    .requiredOption('--checkpoint <file>', 'llama2.c checkpoint in the legacy format (export.py --version 0)')
    .requiredOption('--tokenizer <file>', 'the SentencePiece BPE tokenizer.model it was trained with')
    .requiredOption('--out <dir>', 'folder to write (config.json, model.safetensors, tokenizer files)')
    .option('--overwrite', 'replace model files already in --out')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      '\nExample:\n' +
        '  $ mft convert llama2c --checkpoint stories260K.bin --tokenizer tok512.model --out models/stories260k',
    )
    .action(
      (opts: { checkpoint: string; tokenizer: string; out: string; overwrite?: boolean; json?: boolean }) => {
        const r = convertLlama2c(opts);
        const c = r.config;
        if (opts.json) {
          const report = {
            out: r.out,
            architecture: 'LlamaForCausalLM',
            parameters: r.parameters,
            hidden_size: c.dim,
            intermediate_size: c.hidden_dim,
            num_hidden_layers: c.n_layers,
            num_attention_heads: c.n_heads,
            num_key_value_heads: c.n_kv_heads,
            vocab_size: c.vocab_size,
            max_position_embeddings: c.seq_len,
            tie_word_embeddings: c.sharedClassifier,
          };
          process.stdout.write(jsonOutput(report, 2));
          return;
        }
        process.stdout.write(
          `wrote ${r.out}: LlamaForCausalLM, ${c.n_layers} layers, hidden ${c.dim}, ${c.n_heads} heads ` +
            `(${c.n_kv_heads} kv), vocab ${c.vocab_size}, ${r.parameters.toLocaleString('en-US')} parameters\n`,
        );
      },
    );
}
