#!/usr/bin/env bash
# On the GPU machine (no Node, no npm): unpack the carried Node and dawn.node, find the NVIDIA
# Vulkan driver, run the check. Arguments go to check.mjs (e.g. --peak-tflops 67).
set -euo pipefail
cd "$(dirname "$0")"
gunzip -c node.gz >node && chmod +x node
gunzip -c dawn.node.gz >node_modules/webgpu/dist/linux-x64/dawn.node
# the driver's ICD file where the NVIDIA container toolkit puts it (the loader's default paths miss it)
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then export VK_DRIVER_FILES=$icd; fi
./node check.mjs --fixture llama-golden "$@"
