#!/usr/bin/env bash
# The figures of the README's "Training speed" and "Speed" sections for one GPU, in one go (meant to
# fit in about 8 minutes on an H100; each step writes its JSON as soon as it is done):
#
#   scripts/gpu_benchmark.sh [OUT_DIR]          # default benchmarks/<date>
#
# 1. the fast path against fp32 eager at batch 4 on synthetic data: images/s, peak memory, and the
#    final losses of both on the same held-out photos (quality within 2%?), with a profile;
# 2. end to end from the prepared file at batch 4, 16 and 64 (COCO-like 640x480 JPEGs made from
#    scikit-image's sample photos into PHOTOS, default benchmarks/photos<count>);
# 3. CUDA graphs (compile=reduce-overhead) at the smallest and largest batch;
# 4. the data pipeline: decoding the JPEGs with 8 workers, the prepared file, nvJPEG on the GPU;
# 5. inference at 512x512, 1080p and 4K per execution path.
#
# QUICK=1 runs tiny sizes and few steps, to check the script itself on a CPU. PARTS="1 2" runs only
# those parts (default: all five), for machines lent in short slices.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/$(date +%F)}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
bench="python scripts/benchmark.py"
if [[ ${QUICK:-0} == 1 ]]; then
    count=24 steps=4 warmup=3 profile=2 size=32 batches=(2 4) data_batch=4 sizes=(64x64) workers=1
else
    count=2048 steps=200 warmup=30 profile=5 size=256 batches=(4 16 64) data_batch=64 sizes=(512x512 1920x1080 3840x2160) workers=8
fi
photos=${PHOTOS:-benchmarks/photos$count}   # made once when missing, prepared beside it
parts=" ${PARTS:-1 2 3 4 5} "
part() { [[ $parts == *" $1 "* ]]; }
common=(data=folder "data.root=$photos" "data.image_size=$size" "data.num_workers=$workers" data.num_val=4 "data.sample_size=$size")

python - "$out/env.json" <<'EOF'
import json, platform, sys, torch
cuda = torch.cuda.is_available()
env = {"torch": torch.__version__, "python": platform.python_version(), "cuda": torch.version.cuda,
       "device": torch.cuda.get_device_name() if cuda else "cpu", "cudnn": torch.backends.cudnn.version() if cuda else None}
print(env)
open(sys.argv[1], "w").write(json.dumps(env, indent=2))
EOF

if [[ ! -d $photos ]]; then
    python - "$photos" "$count" <<'EOF'
# COCO-like test photos: 640x480 JPEGs (quality 90), random crops and flips of the sample photos.
import random, sys
from pathlib import Path
from PIL import Image, ImageOps
from fststyle.data import SAMPLE_PHOTOS, sample_root
out, count = Path(sys.argv[1]), int(sys.argv[2])
out.mkdir(parents=True)
sources = [Image.open(sample_root() / name).convert("RGB") for name in SAMPLE_PHOTOS]
rng = random.Random(0)
for i in range(count):
    im = sources[i % len(sources)]
    w, h = im.size
    cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
    x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
    crop = im.crop((x, y, x + cw, y + ch)).resize((640, 480))
    (ImageOps.mirror(crop) if rng.random() < 0.5 else crop).save(out / f"{i:06d}.jpg", quality=90)
print(f"{count} photos in {out}")
EOF
fi
python -m fststyle.prepare "${common[@]}" 2>&1 | tail -2

# 1. fast path vs fp32 eager, the step alone, with a profile of the fast path
part 1 && $bench train --synthetic --compare --steps "$steps" --warmup "$warmup" --profile "$profile" --json "$out/train_synthetic_b4.json" \
    "${common[@]}" data.batch_size=4
# 2. end to end from the prepared file
part 2 && for b in "${batches[@]}"; do
    $bench train --steps "$steps" --warmup "$warmup" --json "$out/train_prepared_b$b.json" "${common[@]}" "data.batch_size=$b"
done
# 3. CUDA graphs (torch.compile's reduce-overhead mode), the step alone, smallest and largest batch
part 3 && for b in "${batches[0]}" "${batches[-1]}"; do
    $bench train --synthetic --steps "$steps" --warmup "$warmup" --json "$out/train_synthetic_b${b}_cudagraphs.json" \
        "${common[@]}" "data.batch_size=$b" compile=reduce-overhead || echo "compile=reduce-overhead failed at batch $b"
done
# 4. the data pipeline alone
part 4 && $bench data --batches 100 --json "$out/data.json" "${common[@]}" "data.batch_size=$data_batch"
# 5. inference
part 5 && $bench infer --sizes "${sizes[@]}" --paths eager channels_last bf16 compile --json "$out/infer.json"
python - "$out" <<'EOF'
# Everything in one file as well.
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
parts = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.name != "summary.json"}
(out / "summary.json").write_text(json.dumps(parts, indent=2))
EOF
echo "results in $out (summary.json holds them all)"
