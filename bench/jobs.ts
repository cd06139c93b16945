/**
 * The benchmark's unit of work: a job runs in a worker process (bench/worker.ts) and returns one
 * JSON-able result. Jobs whose memory or start-up is measured get a process of their own.
 */
import type { DataJob, DataResult } from './sections/data.js';
import type { FootprintJob, FootprintResult } from './sections/footprint.js';
import type { InferenceJob, InferenceResult } from './sections/inference.js';
import type { MainJobJob, MainJobResult } from './sections/main-job.js';
import type { MatmulJob, MatmulResult } from './sections/matmul.js';
import type { ProfileJob, ProfileResult } from './sections/profile.js';
import type { TrainStepJob, TrainStepNoFit, TrainStepResult } from './sections/train-step.js';

export type Job = MatmulJob | TrainStepJob | InferenceJob | FootprintJob | ProfileJob | DataJob | MainJobJob;

export type JobResult =
  | MatmulResult
  | TrainStepResult
  | TrainStepNoFit
  | InferenceResult
  | FootprintResult
  | ProfileResult
  | DataResult
  | MainJobResult;

/** What a worker writes back for one job. */
export type JobOutcome = { ok: true; result: JobResult } | { ok: false; job: Job; error: string };

/** A worker invocation: a tfjs backend and the jobs it runs in order. */
export interface WorkerTask {
  backend: string;
  jobs: Job[];
}

/** Run one job (modules are imported on demand, so a job's process loads only what it uses). */
export async function runJob(job: Job): Promise<JobResult> {
  switch (job.kind) {
    case 'matmul':
      return (await import('./sections/matmul.js')).runMatmul(job);
    case 'train-step':
      return (await import('./sections/train-step.js')).runTrainStep(job);
    case 'inference':
      return (await import('./sections/inference.js')).runInference(job);
    case 'footprint':
      return (await import('./sections/footprint.js')).runFootprint(job);
    case 'profile':
      return (await import('./sections/profile.js')).runProfile(job);
    case 'data':
      return (await import('./sections/data.js')).runData(job);
    case 'main-job':
      return (await import('./sections/main-job.js')).runMainJob(job);
  }
}
