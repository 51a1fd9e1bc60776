#!/usr/bin/env bash
# All benchmarks, in dependency order; results land in bench/results/. Runs are cached under
# logs/bench/ (delete a run folder to redo it). Several CPU-hours on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY bench/ensemble.py "$@"
$PY bench/fusion_levels.py
best_ff=$($PY -c "import json; r=json.load(open('bench/results/fusion_levels.json'))['rows']; \
print(max((k for k in r if k.startswith('feature fusion')), key=lambda k: r[k]['val/psnr']).split(': ')[1])")
best_ens=$($PY -c "import json; print(json.load(open('bench/results/fusion_levels.json'))['ensemble_strategy'])")
$PY bench/denoise_protocol.py --checkpoints logs/bench/ensemble/member_dncnn/checkpoints/best.ckpt \
    logs/bench/ensemble/fusion_${best_ens}/checkpoints/best.ckpt logs/bench/fusion_levels/ff_${best_ff}/checkpoints/best.ckpt
