/**
 * 4) The data pipeline on real text: the repo's `datasets/github_code` through `buildDataset` with
 * the code_completion recipe and the default model's tokenizer (tokens/s, packing efficiency, the
 * cache), and each stage alone (read + parse, tokenize, pack). Then a generated JSONL file of some
 * hundred MB (real records repeated, each made unique) streamed through the reader while sampling
 * RSS, and a smaller generated file through the whole pipeline, to see what memory grows with:
 * the reader should stay flat, the pipeline should grow with the tokens it keeps (ids and labels,
 * 4 bytes each), not with the file.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTaskConfig } from '../../src/config/index.js';
import { buildDataset, packBestFitDecreasing, readRecords, resolveDataset } from '../../src/data/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { repoRelative } from '../lib/machine.js';
import { rssMiB, sig, type Timing, time, timeAsync } from '../lib/measure.js';

export interface DataJob {
  kind: 'data';
  /** The task file whose dataset, recipe and tokenizer are measured (configs/code_completion.yaml). */
  configFile: string;
  /** Size of the generated file streamed through the reader, MB (10^6 bytes). */
  streamMB: number;
  /** Size of the generated file run through the whole pipeline, MB. */
  pipelineMB: number;
  /** Records of the real dataset timed stage by stage (null: all). */
  stageRecords: number | null;
}

export interface PipelineFigures {
  records: number;
  tokens: number;
  trainRows: number;
  packingEfficiency: number;
  validationPackingEfficiency: number | null;
  build: Timing;
  tokensPerS: number;
  tokensPerCpuS: number;
}

export interface DataResult {
  kind: 'data';
  dataset: string;
  /** sha256 of train.jsonl followed by validation.jsonl (as the dataset README quotes it). */
  datasetSha256: string;
  datasetBytes: number;
  tokenizer: string;
  seqLen: number;
  real: PipelineFigures & {
    cacheHit: Timing;
    /** Read + parse of all records; tokenize and pack of the first `records` of them. */
    stages: {
      records: number;
      readParse: Timing;
      tokenize: Timing;
      pack: Timing;
      tokensPerSTokenize: number;
    };
  };
  stream: {
    fileMB: number;
    records: number;
    read: Timing;
    mbPerS: number;
    rssStartMiB: number;
    rssMaxMiB: number;
    rssGrowthMiB: number;
  };
  pipeline: PipelineFigures & {
    fileMB: number;
    rssStartMiB: number;
    rssMaxMiB: number;
    rssGrowthMiB: number;
    /** RSS growth per token kept. */
    rssBytesPerToken: number;
  };
}

/** Samples RSS every few milliseconds while async work runs (timers fire between file reads). */
class RssSampler {
  max = rssMiB();
  private readonly timer = setInterval(() => this.sample(), 20);
  sample(): void {
    this.max = Math.max(this.max, rssMiB());
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max;
  }
}

/** Write `mb` megabytes of JSONL: the given records in turn, each with a unique first line. */
function writeGenerated(path: string, records: Record<string, unknown>[], mb: number): number {
  const fd = openSync(path, 'w');
  let bytes = 0;
  let n = 0;
  try {
    while (bytes < mb * 1e6) {
      const lines: string[] = [];
      let chunk = 0;
      while (chunk < 1e6 && bytes + chunk < mb * 1e6) {
        const r = records[n % records.length]!;
        const line = `${JSON.stringify({ ...r, text: `// copy ${n}\n${String(r['text'] ?? '')}` })}\n`;
        lines.push(line);
        chunk += Buffer.byteLength(line);
        n++;
      }
      writeSync(fd, lines.join(''));
      bytes += chunk;
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

function pipelineFigures(
  stats: Awaited<ReturnType<typeof buildDataset>>['stats'],
  build: Timing,
): PipelineFigures {
  const tokens = stats.train.tokens + (stats.validation?.tokens ?? 0);
  return {
    records: stats.records,
    tokens,
    trainRows: stats.train.rows,
    packingEfficiency: sig(stats.train.packingEfficiency),
    validationPackingEfficiency: stats.validation ? sig(stats.validation.packingEfficiency) : null,
    build: { wallS: sig(build.wallS), cpuS: sig(build.cpuS) },
    tokensPerS: sig(tokens / build.wallS),
    tokensPerCpuS: sig(tokens / build.cpuS),
  };
}

/** Run all data measurements in a temporary folder (removed afterwards). */
export async function runData(job: DataJob): Promise<DataResult> {
  const tmp = mkdtempSync(join(tmpdir(), 'mft-bench-data-'));
  const quiet = { log: () => {} };
  try {
    // the real dataset, cold (fresh cache folder) then from the cache
    const config = await loadTaskConfig(job.configFile, { set: [`cache_dir=${join(tmp, 'cache')}`] });
    const tok = await loadTokenizer(config.base_model);
    const files = resolveDataset(config.dataset);
    const all = [...files.train, ...files.validation];
    const hash = createHash('sha256');
    for (const f of all) hash.update(readFileSync(f.path));
    const built = await timeAsync(() => buildDataset(config, tok, quiet));
    const cacheHit = await timeAsync(() => buildDataset(config, tok, quiet));

    // the stages alone: read + parse, tokenize (text + EOS, as the recipe does), pack
    const records: Record<string, unknown>[] = [];
    const readParse = await timeAsync(async () => {
      for (const f of all) for await (const r of readRecords(f)) if (r.ok) records.push(r.value);
    });
    const field = config.fields['text'] ?? config.recipe.fields['text'] ?? 'text';
    const lengths: number[] = [];
    const staged = records.slice(0, job.stageRecords ?? records.length);
    const tokenize = time(() => {
      for (const r of staged) lengths.push(tok.encode(String(r[field] ?? '')).length + 1);
    });
    const L = config.sequence_len;
    const pieces = lengths.flatMap((n) =>
      Array.from({ length: Math.ceil(n / L) }, (_, i) => Math.min(L, n - i * L)),
    );
    const pack = time(() => packBestFitDecreasing(pieces, L, 1));
    const tokenized = lengths.reduce((a, b) => a + b, 0);

    // a generated file of some hundred MB through the reader alone, sampling RSS
    const streamPath = join(tmp, 'stream.jsonl');
    writeGenerated(streamPath, records, job.streamMB);
    const streamBytes = statSync(streamPath).size;
    const streamStart = rssMiB();
    const sampler = new RssSampler();
    let streamed = 0;
    const read = await timeAsync(async () => {
      for await (const r of readRecords({ path: streamPath, kind: 'jsonl' })) {
        if (r.ok) streamed++;
        if (streamed % 2000 === 0) sampler.sample();
      }
    });
    const streamMax = sampler.stop();
    rmSync(streamPath);

    // a smaller generated file through the whole pipeline (tokens are kept: memory grows with them)
    const pipePath = join(tmp, 'pipeline.jsonl');
    writeGenerated(pipePath, records, job.pipelineMB);
    const pipeBytes = statSync(pipePath).size;
    const task = join(tmp, 'pipeline.yaml');
    writeFileSync(
      task,
      `task: code_completion\ndataset: ./pipeline.jsonl\nbase_model: ${JSON.stringify(config.base_model)}\ncache_dir: cache2\nval_set_size: 0\n`,
    );
    const pipeConfig = await loadTaskConfig(task);
    const pipeStart = rssMiB();
    const pipeSampler = new RssSampler();
    const pipeBuilt = await timeAsync(() => buildDataset(pipeConfig, tok, quiet));
    const pipeMax = pipeSampler.stop();
    const pipeFig = pipelineFigures(pipeBuilt.value.stats, pipeBuilt);

    return {
      kind: 'data',
      dataset: all.map((f) => repoRelative(f.path)).join(', '),
      datasetSha256: hash.digest('hex'),
      datasetBytes: all.reduce((s, f) => s + statSync(f.path).size, 0),
      tokenizer: repoRelative(config.base_model),
      seqLen: L,
      real: {
        ...pipelineFigures(built.value.stats, built),
        cacheHit: { wallS: sig(cacheHit.wallS), cpuS: sig(cacheHit.cpuS) },
        stages: {
          records: staged.length,
          readParse: { wallS: sig(readParse.wallS), cpuS: sig(readParse.cpuS) },
          tokenize: { wallS: sig(tokenize.wallS), cpuS: sig(tokenize.cpuS) },
          pack: { wallS: sig(pack.wallS), cpuS: sig(pack.cpuS) },
          tokensPerSTokenize: sig(tokenized / tokenize.wallS),
        },
      },
      stream: {
        fileMB: sig(streamBytes / 1e6),
        records: streamed,
        read: { wallS: sig(read.wallS), cpuS: sig(read.cpuS) },
        mbPerS: sig(streamBytes / 1e6 / read.wallS),
        rssStartMiB: sig(streamStart),
        rssMaxMiB: sig(streamMax),
        rssGrowthMiB: sig(streamMax - streamStart),
      },
      pipeline: {
        ...pipeFig,
        fileMB: sig(pipeBytes / 1e6),
        rssStartMiB: sig(pipeStart),
        rssMaxMiB: sig(pipeMax),
        rssGrowthMiB: sig(pipeMax - pipeStart),
        rssBytesPerToken: sig(((pipeMax - pipeStart) * 2 ** 20) / Math.max(1, pipeFig.tokens)),
      },
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
