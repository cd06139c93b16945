/**
 * SIGINT / SIGTERM during training: the first one asks the loop to stop after the current step
 * (it then writes a checkpoint and exits 130 / 143, 128 + the signal number, as shells report);
 * a second SIGINT stops at once, leaving the last complete checkpoint.
 *
 * Node runs signal handlers only between macrotasks, so the loop yields to the event loop after
 * every step (`yieldToEventLoop`) for the flag to be seen.
 */

export type StopSignalName = 'SIGINT' | 'SIGTERM';

/** Exit status of a process that stopped because of `signal`: 130 for SIGINT, 143 for SIGTERM. */
export function exitCodeFor(signal: StopSignalName): number {
  return signal === 'SIGINT' ? 130 : 143;
}

export interface StopWatch {
  /** The first stop signal received, or null. */
  readonly received: StopSignalName | null;
  /** Remove the handlers (restores the default behaviour: the process dies on the signal). */
  dispose(): void;
}

/**
 * Install SIGINT / SIGTERM handlers for the length of a run.
 * @param onFirst called once with the first signal (e.g. to print "stopping after this step")
 * @param onSecond called when a second signal arrives; defaults to exiting at once with its code
 * @example const stop = watchStopSignals((s) => log(`${s}: stopping after this step`)); ... stop.dispose();
 */
export function watchStopSignals(
  onFirst: (signal: StopSignalName) => void,
  onSecond: (signal: StopSignalName) => void = (s) => process.exit(exitCodeFor(s)),
): StopWatch {
  let received: StopSignalName | null = null;
  const handler = (signal: StopSignalName) => {
    if (received === null) {
      received = signal;
      onFirst(signal);
    } else {
      onSecond(signal);
    }
  };
  const onInt = () => handler('SIGINT');
  const onTerm = () => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    get received() {
      return received;
    },
    dispose() {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/** Let pending I/O and signal handlers run (a macrotask turn) between CPU-bound steps. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
