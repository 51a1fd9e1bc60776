#!/usr/bin/env bash
# All benchmarks, in dependency order; results land in bench/results/. Runs are cached under
# logs/bench/ (keyed on overrides + code version; delete a run folder to redo it). Several CPU-hours
# on a 2-core machine at the default budget. Budget arguments (--epochs, --samples, --seeds) go to
# both ensemble.py and fusion_levels.py, which must share them:
#   bash bench/run_all.sh --epochs 2 --samples 3200
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY bench/ensemble.py "$@"
$PY bench/fusion_levels.py "$@"
# the protocol check: classical denoisers (BM3D, NL-means, TV) on the seeded noisy Set12/BSD68 images
# against their published figures (no trained checkpoints: those are compared over seeds above)
OMP_NUM_THREADS=1 $PY bench/denoise_protocol.py   # needs .[bench] (bm3d)
$PY bench/denoise_color.py --minutes 30 --models single feature_fusion ensemble   # needs .[bench] (bm3d)
$PY bench/weight_fusion.py --part soups
$PY bench/weight_fusion.py --part averaging
$PY bench/quality_per_minute.py --minutes 20
$PY bench/gan.py
$PY bench/superres.py --minutes 2
# generation: two regimes, eight rows (about 80 minutes per seed of both regimes on one thread)
OMP_NUM_THREADS=1 taskset -c 0 $PY bench/generation.py --steps 8000 --seeds 1 &
OMP_NUM_THREADS=1 taskset -c 1 $PY bench/generation.py --steps 8000 --seeds 2; wait
$PY bench/generation.py --steps 8000 --seeds 1 2
$PY bench/style_features.py --experiments style_default
OMP_NUM_THREADS=1 $PY bench/style_features.py --experiments style_paintings --seeds 1 2 3
$PY bench/throughput.py
# calibrated error bounds: 12 models (two shards, one thread each), then the heuristics per seed
OMP_NUM_THREADS=1 taskset -c 0 $PY bench/uncertainty.py --phase train --shard 0/2 &
OMP_NUM_THREADS=1 taskset -c 1 $PY bench/uncertainty.py --phase train --shard 1/2; wait
$PY bench/uncertainty.py --phase eval --shard 0/2 & $PY bench/uncertainty.py --phase eval --shard 1/2; wait
$PY bench/uncertainty.py --phase report
