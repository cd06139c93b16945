import type { Command } from 'commander';
import { autoBackend } from '../backend/index.js';
import { configTable, loadTaskConfig, schemaMarkdown, schemaText, taskValues } from '../config/index.js';
import { checkTrainingMemory, trainingMemory } from '../train/index.js';
import { jsonOutput } from '../util/index.js';
import { collect } from './collect.js';

/** `mft config check` and `mft config schema`: validate a task file; print every task key. */
export function registerConfig(program: Command): void {
  const config = program.command('config').description('check task files and list every task key');

  config
    .command('check')
    .description('validate a task file and print the resolved configuration, each value with its source')
    .argument('<task.yaml>', 'the task file')
    .option(
      '--set <key=value>',
      'override a key (repeatable; dotted keys for maps: fields.text=content)',
      collect,
      [],
    )
    .option('--json', 'print one JSON object {config, sources}')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mft config check configs/code_completion.yaml\n  $ mft config check configs/code_completion.yaml --set lora_r=8 --set quantization=nf4 --json',
    )
    .action(async (file: string, opts: { set: string[]; json?: boolean }) => {
      const resolved = await loadTaskConfig(file, { set: opts.set });
      // the memory the run would need on the backend it would use, refused as `mft train` refuses it
      const backend = resolved.backend === 'auto' ? await autoBackend() : resolved.backend;
      const memory = await trainingMemory(resolved, backend);
      if (opts.json) {
        const { estimate, limit } = memory;
        const doc = {
          config: taskValues(resolved),
          sources: resolved.sources,
          memory: { backend, ...estimate, limit, fits: memory.overBy === null },
        };
        process.stdout.write(jsonOutput(doc, 2));
      } else {
        process.stdout.write(configTable(resolved));
        process.stdout.write(`\nmemory on ${backend}: ${memory.summary}; limit: ${memory.limit}\n`);
      }
      checkTrainingMemory(resolved, memory);
    });

  config
    .command('schema')
    .description('print every task key with its type, default and description')
    .option('--markdown', 'print the markdown tables of the configuration reference (docs/task-files.md)')
    .addHelpText('after', '\nExamples:\n  $ mft config schema\n  $ mft config schema --markdown')
    .action((opts: { markdown?: boolean }) => {
      process.stdout.write(opts.markdown ? schemaMarkdown() : schemaText());
    });
}
