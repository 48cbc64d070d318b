#!/usr/bin/env bash
# The README's GPU figures in one go, for a GPU lent for minutes (about 8 on an H100/H200; every part
# writes its JSON as soon as it is done and has a time limit of its own, so a slow part loses only itself):
#
#   scripts/gpu_benchmark.sh [OUT_DIR]          # default benchmarks/<date>; summary.json holds it all
#
# 1. training end to end at 256 px, batch 4: the GPU preset against fp32 eager (gpu_preset=[]'s way),
#    images/s, ms per step, peak memory, final losses on held-out photos, and a profile of the steps;
# q. the GPU schedule's quality: experiment=johnson2016 for QUALITY_TIME (DD:HH:MM:SS, default 3 minutes),
#    on the photos, judged on six held-out photos against 300 L-BFGS iterations of its own objective from the photo
#    and from noise at 250, 500, 1k, ... steps and at the end (quality_every=log);
# a. the anchor: pytorch/examples' training loop (scripts/bench/anchor.py), fp32 batch 4, end to end and
#    the step alone;
# 5. inference at 1080p and 4K per execution path (eager fp32, channels_last, bf16 and its variants, fp16,
#    compile), with a profile of the bf16 path (infer's default on a GPU);
# 2. the same as 1 at batch 16;
# 4. the data pipeline alone: decoding the photos with 8 workers, the prepared file, nvJPEG on the GPU;
# 6. the preset alone at batch 64;
# 3. CUDA graphs (compile=reduce-overhead), batch 4 and 64 (not in the default PARTS).
#
# PHOTOS: the training photos (default ../shared/assets/coco128, real COCO photos); HELD_OUT: a folder
# with the held-out photos of the quality part (default ../shared/assets/photos). QUICK=1 runs tiny sizes
# and few steps, to check the script itself on a CPU. PARTS="1 q" runs only those parts. BUDGET_S=520 ends
# each part where the whole script would pass 520 s.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/$(date +%F)}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
bench="python scripts/benchmark.py"
shared=${SHARED:-$(cd .. && pwd)/shared/assets}
photos=${PHOTOS:-$shared/coco128}
held_out=${HELD_OUT:-$shared/photos}
val_files=$(python scripts/held_out_photos.py --hydra)  # conf/data/coco_heldout.yaml's
if [[ ${QUICK:-0} == 1 ]]; then
    steps=4 warmup=4 profile=2 size=32 batches=(2 4) big=4 sizes=(64x64) workers=1 limit=600 quality=(trainer.max_steps=3 quality_reference_steps=3 data.sample_size=32)
else
    steps=200 warmup=30 profile=5 size=256 batches=(4 16) big=64 sizes=(1920x1080 3840x2160) workers=8 limit=300
    quality=(+trainer.max_time=${QUALITY_TIME:-00:00:03:00})
fi
parts=" ${PARTS:-1 q a 5 2 4 6} "
part() { [[ $parts == *" $1 "* ]]; }
deadline=$((SECONDS + ${BUDGET_S:-86400}))  # BUDGET_S: the seconds the whole script may take (a lease's length)
run() {  # one part, within its own limit and what is left of the budget
    local left=$((deadline - SECONDS))
    ((left > 20)) || { echo "SKIPPED (budget spent): $*"; return; }
    timeout "$((left < limit ? left : limit))" "$@" || echo "FAILED or out of time: $*"
}
common=(data=coco "data.root=$photos" "data.image_size=$size" "data.num_workers=$workers" data.num_val=4 "data.sample_size=$size")

python - "$out/env.json" <<'EOF'
import json, platform, sys, torch
cuda = torch.cuda.is_available()
env = {"torch": torch.__version__, "python": platform.python_version(), "cuda": torch.version.cuda,
       "device": torch.cuda.get_device_name() if cuda else "cpu", "cudnn": torch.backends.cudnn.version() if cuda else None}
print(env)
open(sys.argv[1], "w").write(json.dumps(env, indent=2))
EOF
python -m fststyle.prepare "${common[@]}" 2>&1 | tail -2

# 1. the GPU preset vs fp32 eager, end to end from the prepared file, with a profile of the preset's steps
part 1 && run $bench train --compare --steps "$steps" --warmup "$warmup" --profile "$profile" --json "$out/train_b${batches[0]}.json" \
    "${common[@]}" "data.batch_size=${batches[0]}"
# q. the GPU schedule (Johnson et al.'s: batch 4, 256 px, Adam 1e-3) for a few minutes, and its quality. The
# loss network is the bundled VGG19 (the schedule's VGG16 weights would be downloaded: there may be no network).
part q && run python -m fststyle.train experiment=johnson2016 loss=vgg19 style=starry_night data=coco \
    "data.root=[$photos,$held_out]" "data.val_files=$val_files" "data.image_size=$size" "data.sample_size=$size" \
    quality_every=log sample_every=0 logger=csv "style_cache=$out/styles" "hydra.run.dir=$out/johnson2016" "${quality[@]}"
# a. the anchor, pytorch/examples' loop
part a && run $bench anchor --photos "$photos/train2017" --batch 4 --size "$size" --steps "$steps" --warmup "$warmup" --json "$out/anchor.json"
# 5. inference
part 5 && run $bench infer --sizes "${sizes[@]}" --paths bf16 eager channels_last bf16-nchw bf16-weights fp16 ${INFER_COMPILE-compile} --profile --json "$out/infer.json"
# 2. the same as 1 at a larger batch
part 2 && run $bench train --compare --steps "$steps" --warmup "$warmup" --json "$out/train_b${batches[1]}.json" \
    "${common[@]}" "data.batch_size=${batches[1]}"
# 4. the data pipeline alone
part 4 && run $bench data --batches 100 --json "$out/data.json" "${common[@]}" "data.batch_size=${batches[-1]}"
# 6. the preset alone at a large batch, with a profile
part 6 && run $bench train --profile "$profile" --steps "$steps" --warmup "$warmup" --json "$out/train_b$big.json" "${common[@]}" "data.batch_size=$big"
# 3. CUDA graphs (torch.compile's reduce-overhead mode), the step alone
part 3 && for b in "${batches[0]}" "$big"; do
    run $bench train --synthetic --steps "$steps" --warmup "$warmup" --json "$out/train_synthetic_b${b}_cudagraphs.json" \
        "${common[@]}" "data.batch_size=$b" compile=reduce-overhead
done
python - "$out" <<'EOF'
# Everything in one file as well, with the quality run's measurements.
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
parts = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.name != "summary.json"}
curve = out / "johnson2016" / "quality.jsonl"
if curve.is_file():
    parts["johnson2016_quality"] = [json.loads(line) for line in curve.read_text().splitlines() if line.strip()]
(out / "summary.json").write_text(json.dumps(parts, indent=2))
EOF
echo "results in $out (summary.json holds them all)"
