/**
 * The tokenizing progress bar: bytes of the data files read so far, on stderr, only on a TTY
 * (a log file or a pipe gets the summary lines alone).
 */
import cliProgress from 'cli-progress';

export interface ByteProgress {
  /** Bytes of the current file read so far. */
  update(fileBytes: number): void;
  /** The current file is done; the next `update` counts from the next file. */
  nextFile(fileSize: number): void;
  /** Records processed so far (shown beside the bar). */
  records(n: number): void;
  stop(): void;
}

const NONE: ByteProgress = { update() {}, nextFile() {}, records() {}, stop() {} };

/** A progress bar over `totalBytes` when `opts.enabled` and stderr is a TTY; a no-op otherwise. */
export function byteProgress(totalBytes: number, opts: { enabled: boolean }): ByteProgress {
  if (!opts.enabled || !process.stderr.isTTY || totalBytes === 0) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      format: 'tokenizing |{bar}| {percentage}% | {records} records',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(totalBytes, 0, { records: 0 });
  let done = 0;
  let current = 0;
  let recordCount = 0;
  let lastDraw = 0;
  return {
    update(fileBytes) {
      current = fileBytes;
      const now = Date.now();
      if (now - lastDraw > 100) {
        lastDraw = now;
        bar.update(Math.min(totalBytes, done + current), { records: recordCount });
      }
    },
    nextFile(fileSize) {
      done += fileSize;
      current = 0;
    },
    records(n) {
      recordCount = n;
    },
    stop() {
      bar.update(totalBytes, { records: recordCount });
      bar.stop();
    },
  };
}
