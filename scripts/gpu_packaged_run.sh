#!/usr/bin/env bash
# The packaged model's retraining (scripts/packaged_run.sh) on a GPU lent for minutes, then each painting
# judged on the six held-out photos against 300 L-BFGS iterations of its own objective, from the photo
# and from noise (scripts/quality_benchmark.py; the references are computed in fp32, TF32 off, so that the
# CPU can reuse them from the cache as they are). Everything useful comes back in at most 8 files:
#
#   scripts/gpu_packaged_run.sh OUT_DIR      # TRAIN_TIME (HH:MM:SS, default 00:04:30), BUDGET_S (default 540)
#   MODEL=fststyle/models/packaged.pth STYLES="the_scream udnie" scripts/gpu_packaged_run.sh OUT_DIR   # judge only
#
# OUT_DIR/packaged.pth (the exported model, its training record in the metadata), log.txt, run.tar (the
# run folder without checkpoints: config, metrics.csv, samples; and each painting's quality.json and
# contact sheet), references.tar (the cached references, for benchmarks/quality/references on the CPU),
# ckpt.part-* (last.ckpt split in 15 MB parts: `cat ckpt.part-* > last.ckpt` resumes it exactly).
# QUICK=1 runs tiny sizes and a few steps, to check the script itself on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: gpu_packaged_run.sh OUT_DIR}")
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
export PYTHONUNBUFFERED=1
deadline=$((SECONDS + ${BUDGET_S:-540}))
work=${WORK:-/tmp/fststyle_packaged}  # the run folder and the references' cache, packed at the end
shared=${SHARED:-$(cd .. && pwd)/shared/assets}
mapfile -t photos < <(python scripts/held_out_photos.py "$shared/photos" "$shared/coco128")
((${#photos[@]} == 6)) || exit 1
read -ra styles <<< "${STYLES:-starry_night great_wave the_scream composition_vii shipwreck udnie}"
if [[ ${QUICK:-0} == 1 ]]; then
    train=(trainer.max_steps=2 data.batch_size=6 data.repeat=2 data.image_size=32 data.sample_size=32 data.num_workers=1 trainer.precision=32 compile=false)
    judge=(--size 32 --reference-steps 3)
else
    train=(trainer=gpu data.batch_size=24 data.repeat=20 data.num_workers=14 data.prepared=false trainer.max_steps=200000
           "+trainer.max_time=00:${TRAIN_TIME:-00:04:30}" checkpoint_every=1000 sample_every=2000)
    judge=(--size 256 --reference-steps 300)
fi
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"

# Training: the GPU preset (bf16, channels_last, compile) at batch 24, four squares per painting a step,
# random squares of the photos (not the prepared file's one centre square each: only 143 photos), each
# photo 20 times an epoch (a 5-step epoch would leave the GPU waiting at every start); if the compiled
# run fails, the same without compile from its last checkpoint (ckpt_path=last).
model=${MODEL:-$work/packaged/export/packaged.pth}
if [[ -z ${MODEL:-} ]]; then
    RUNS=$work SHARED=$shared scripts/packaged_run.sh "${train[@]}" ||
        RUNS=$work SHARED=$shared scripts/packaged_run.sh "${train[@]}" compile=false
    cp "$model" "$out/packaged.pth"
fi

# Judging, each painting within what is left of the budget (60 s kept for packing up).
for style in "${styles[@]}"; do
    left=$((deadline - SECONDS - 60))
    ((left > 10)) || { echo "SKIPPED (budget spent): judging $style"; continue; }
    timeout "$left" python scripts/quality_benchmark.py --model "$model" --style "$style" \
        --photos "${photos[@]}" "${judge[@]}" --cache "$work/references" --out "$work/packaged/quality/$style" ||
        echo "FAILED or out of time: judging $style"
done

tar -C "$work" -cf "$out/references.tar" references 2>/dev/null
tar -C "$work" -cf "$out/run.tar" --exclude=checkpoints --exclude=export packaged
[[ -n ${MODEL:-} ]] || split -b 15M "$work/packaged/checkpoints/last.ckpt" "$out/ckpt.part-"
ls -la "$out"
