/**
 * A benchmark worker process: `node --import tsx bench/worker.ts <task.json> <out.json>`.
 * Initialises the task's tfjs backend (except for a lone main job, which must pay its own start-up),
 * runs the jobs in order and writes one outcome per job. A failing job is recorded, not fatal.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { type JobOutcome, runJob, type WorkerTask } from './jobs.js';

const [taskPath, outPath] = process.argv.slice(2);
if (!taskPath || !outPath) {
  process.stderr.write('usage: node --import tsx bench/worker.ts <task.json> <out.json>\n');
  process.exit(2);
}
const task = JSON.parse(readFileSync(taskPath, 'utf8')) as WorkerTask;
const needsBackend = task.jobs.some((j) => j.kind !== 'main-job' && j.kind !== 'data');
if (needsBackend) {
  const { initBackend } = await import('../src/backend/index.js');
  await initBackend(task.backend as 'wasm');
}
const outcomes: JobOutcome[] = [];
for (const job of task.jobs) {
  try {
    outcomes.push({ ok: true, result: await runJob(job) });
  } catch (e) {
    outcomes.push({ ok: false, job, error: (e as Error)?.stack ?? String(e) });
  }
  writeFileSync(outPath, JSON.stringify(outcomes));
}
