import { availableParallelism, cpus, freemem, totalmem } from 'node:os';
import type { Command } from 'commander';
import { autoBackend, probeBackends, useNativeKernels, type WebGpuAdapter } from '../backend/index.js';
import { jsonOutput } from '../util/index.js';

/** The webgpu adapter's limits and features, indented under its backend line. */
function adapterLines(a: WebGpuAdapter): string[] {
  const limits = Object.entries(a.limits).map(([k, v]) => `${k} ${v}`);
  return [`             limits: ${limits.join(', ')}`, `             features: ${a.features.join(' ')}`];
}

/** `mft doctor`: what this machine offers mft (Node, cores, memory, each tfjs backend). */
export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('report Node, CPU, memory and which tfjs backends work here')
    .option('--json', 'print one JSON object')
    .addHelpText('after', '\nExample:\n  $ mft doctor')
    .action(async (opts: { json?: boolean }) => {
      const probes = await probeBackends();
      const wasmProbe = probes.find((p) => p.name === 'wasm');
      const report = {
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)),
        backends: probes,
        auto: await autoBackend(),
        wasm_matmul: wasmProbe?.available ? useNativeKernels() : undefined,
      };
      const auto = report.auto;
      const threaded = auto === 'tensorflow' || auto === 'webgpu';
      const workers = {
        auto: threaded ? 1 : availableParallelism(),
        why: threaded
          ? `${auto} threads its own kernels`
          : `one per core, fewer when the ${(freemem() / 2 ** 30).toFixed(1)} GiB free would not hold them for the run's model; each its own ${auto} instance, the frozen base shared`,
      };
      if (opts.json) {
        process.stdout.write(jsonOutput({ ...report, num_workers_auto: workers.auto }, 2));
        return;
      }
      const lines = [
        `node      ${report.node} (${report.platform})`,
        `cpu       ${report.cpu}, ${report.cores} cores`,
        `memory    ${report.memory_gib} GiB`,
        'backends:',
        ...probes.flatMap((p) => [
          `  ${p.name.padEnd(10)} ${p.available ? 'available  ' : 'unavailable'}  ${p.detail}`,
          ...(p.adapter ? adapterLines(p.adapter) : []),
        ]),
        `backend: auto picks ${report.auto}`,
        ...(report.wasm_matmul ? [`kernels   wasm matrix products: ${report.wasm_matmul.detail}`] : []),
        `workers   num_workers: auto trains on ${workers.auto} here (${workers.why})`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
