#!/usr/bin/env bash
# The learning curve's training run (docs/training.md; issue Quality IV): Starry Night from scratch,
# 256 px squares, batch 1, constant learning rate, on COCO photos (coco128) plus the shared photos it is
# not judged on; quality at log-spaced steps (250, 500, 1k, ...) on six held-out photos against 300
# L-BFGS iterations from the photo and from noise (references cached in $RUNS/styles/references).
# Resumable at any moment: stop it with SIGTERM (it checkpoints), run this again to continue.
#
#   RUNS=~/runs SHARED=../shared/assets nohup scripts/learning_curve_run.sh > ~/runs/curve.log 2>&1 &
#   python scripts/learning_curve.py ~/runs/curve_starry_night --out docs/learning_curve.png
set -euo pipefail
RUNS=${RUNS:-$HOME/runs}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared/assets}
exec nice -n 10 python -m fststyle.train style=starry_night data=coco_heldout \
  "data.root=[$SHARED/coco128,$SHARED/photos]" \
  data.batch_size=1 \
  init=null trainer.max_steps=64000 optim.schedule=constant optim.warmup_steps=50 \
  quality_every=log sample_every=1000 checkpoint_every=500 checkpoint_keep=-1 \
  logger=csv style_cache="$RUNS/styles" hydra.run.dir="$RUNS/curve_starry_night" ckpt_path=last "$@"
