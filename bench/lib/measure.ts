/**
 * Timing and memory probes. Every timing records wall-clock seconds and the process's CPU seconds:
 * tfjs runs one thread here (wasm in Node, and the cpu backend), so on a shared machine the CPU
 * time is the work done and wall / CPU shows how much of a core the run actually got.
 */

/** Wall-clock and CPU seconds of something timed. */
export interface Timing {
  wallS: number;
  cpuS: number;
}

/** Seconds since `start` (wall) and CPU seconds since `cpuStart`. */
export function since(start: number, cpuStart: NodeJS.CpuUsage): Timing {
  const c = process.cpuUsage(cpuStart);
  return { wallS: (performance.now() - start) / 1000, cpuS: (c.user + c.system) / 1e6 };
}

/** Time a synchronous function. */
export function time<T>(f: () => T): { value: T } & Timing {
  const start = performance.now();
  const cpu = process.cpuUsage();
  const value = f();
  return { value, ...since(start, cpu) };
}

/** Time an async function. */
export async function timeAsync<T>(f: () => Promise<T>): Promise<{ value: T } & Timing> {
  const start = performance.now();
  const cpu = process.cpuUsage();
  const value = await f();
  return { value, ...since(start, cpu) };
}

/** The median of the timed runs (wall and CPU taken from the same run). */
export interface Repeated extends Timing {
  runs: Timing[];
}

/**
 * Run `f` `warmup` times untimed, then `runs` times timed; returns the run with the median wall
 * time (the lower median: of two runs, the faster) and every run.
 */
export async function repeat(f: () => unknown, warmup: number, runs: number): Promise<Repeated> {
  for (let i = 0; i < warmup; i++) await f();
  const all: Timing[] = [];
  for (let i = 0; i < Math.max(1, runs); i++) all.push(await timeAsync(async () => await f()));
  const sorted = [...all].sort((a, b) => a.wallS - b.wallS);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return { wallS: mid.wallS, cpuS: mid.cpuS, runs: all };
}

const MIB = 2 ** 20;

/** Resident set size now, MiB. */
export function rssMiB(): number {
  return process.memoryUsage.rss() / MIB;
}

/** Peak resident set size of this process so far (the kernel's high-water mark), MiB. */
export function peakRssMiB(): number {
  return (process.resourceUsage().maxRSS * 1024) / MIB;
}

/** Round to `digits` significant digits (figures in the JSON stay readable). */
export function sig(x: number, digits = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(digits));
}
