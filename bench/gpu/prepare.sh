#!/usr/bin/env bash
# Build what the real-GPU check needs into bench/gpu/carry/ (git-ignored, under 64 MiB): the check
# bundled by esbuild, this machine's Node binary and Dawn's dawn.node (both gzipped), the
# llama-golden fixture and run.sh. See bench/gpu/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/gpu/carry
rm -rf "$out" && mkdir -p "$out/node_modules/webgpu/dist/linux-x64"
# webgpu stays outside the bundle: its index.js loads dawn.node from beside itself.
node_modules/.bin/esbuild bench/gpu/check.ts --bundle --platform=node --format=esm --target=node20 \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --log-level=warning --outfile="$out/check.mjs"
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$out/node_modules/webgpu/"
gzip -9c node_modules/webgpu/dist/linux-x64/dawn.node >"$out/dawn.node.gz"
gzip -9c "$(command -v node)" >"$out/node.gz"
cp -r test/fixtures/llama-golden "$out/llama-golden"
cp bench/gpu/run.sh "$out/run.sh"
du -sh "$out"
