#!/usr/bin/env bash
# The packaged model's retraining (docs/training.md, "The packaged model, retrained"; issue Quality IV):
# the six packaged paintings in one network, each at the weight and Gram size of its conf/style/NAME.yaml,
# 256 px squares, batch 6 (one square per painting per step), constant learning rate, on COCO photos
# (coco128) plus the shared photos it is not judged on (the learning curve's six held-out photos stay
# out), warm-started from the packaged model of 2026-12-02 (the same paintings in the same order).
# 14,000 steps give each painting 14,000 images, 10x the old model's 1,400. Meant for days of
# background time: stop it with SIGTERM (it checkpoints), run this again to continue (ckpt_path=last).
#
#   RUNS=~/runs SHARED=../shared/assets nohup scripts/packaged_run.sh > ~/runs/packaged.log 2>&1 &
#   python scripts/quality_benchmark.py --run ~/runs/packaged --style NAME ...   (each painting, at the end)
set -euo pipefail
RUNS=${RUNS:-$HOME/runs}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared/assets}
exec nice -n 10 python -m fststyle.train 'styles=[starry_night,great_wave,the_scream,composition_vii,shipwreck,udnie]' \
  style.name=packaged data=coco_heldout "data.root=[$SHARED/coco128,$SHARED/photos]" \
  data.batch_size=6 \
  init=packaged trainer.max_steps=14000 optim.schedule=constant optim.warmup_steps=50 \
  sample_every=1000 checkpoint_every=250 logger=csv style_cache="$RUNS/styles" \
  hydra.run.dir="$RUNS/packaged" ckpt_path=last "$@"
