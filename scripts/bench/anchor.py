"""The anchor's training speed (`scripts/benchmark.py anchor`): Johnson et al.'s training loop as
pytorch/examples' fast_neural_style runs it, written out here so that it runs beside fststyle in the
same call: photos decoded by PIL in the training process (a DataLoader with no workers), resized to
the short side and centre-cropped, float32 eager, VGG16 up to relu4_3 on the output and on the photo,
content at relu2_2, style Grams at four layers, Adam, and both losses read back to the host every
step (`.item()`), as its loop does. Reports images/s end to end and for the step alone (one batch
kept on the device). The weights do not change the speed: the VGG16 here is untrained."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.models import vgg16

from bench.common import device_name
from fststyle.images import is_image_file
from fststyle.losses import gram
from fststyle.net import TransformerNet
from fststyle.inference.stylizer import pick_device

RELU_ENDS = (4, 9, 16, 23)  # relu1_2, relu2_2, relu3_3, relu4_3 in torchvision's vgg16().features
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Photos(Dataset):
    def __init__(self, folder: Path, size: int):
        self.files = sorted(p for p in folder.iterdir() if is_image_file(p))
        self.transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(Image.open(self.files[i]).convert("RGB"))


class Vgg16Relus(nn.Module):
    def __init__(self):
        super().__init__()
        features = vgg16(weights=None).features[:RELU_ENDS[-1]].eval().requires_grad_(False)
        self.slices = nn.ModuleList(features[a:b] for a, b in zip((0, *RELU_ENDS[:-1]), RELU_ENDS))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, out = (x - self.mean) / self.std, []
        for part in self.slices:
            x = part(x)
            out.append(x)
        return out


def run(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    torch.manual_seed(0)
    net, vgg = TransformerNet().to(device).train(), Vgg16Relus().to(device)
    optimizer, mse = torch.optim.Adam(net.parameters(), 1e-3), nn.MSELoss()
    style = torch.rand(1, 3, args.size, args.size, device=device)  # the painting's pixels do not change the speed
    with torch.no_grad():
        style_grams = [gram(f) for f in vgg(style)]

    def step(x: torch.Tensor) -> tuple[float, float]:
        optimizer.zero_grad()
        x = x.to(device)
        y = net(x)
        features_y, features_x = vgg(y), vgg(x)
        content = 1e5 * mse(features_y[1], features_x[1])
        style_loss = 1e10 * sum(mse(gram(f), g.expand(len(x), -1, -1)) for f, g in zip(features_y, style_grams))
        (content + style_loss).backward()
        optimizer.step()
        return content.item(), style_loss.item()

    loader = DataLoader(Photos(Path(args.photos), args.size), batch_size=args.batch, drop_last=True)
    timings = {}
    for mode in ("end to end", "step alone"):
        batches = iter(loader) if mode == "end to end" else None
        kept = None if batches else next(iter(loader)).to(device)
        done = 0
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                start, done = time.perf_counter(), 0
            if batches is None:
                x = kept
            else:
                x = next(batches, None)
                if x is None:  # a new epoch: the loader starts again, as the anchor's loop does
                    batches = iter(loader)
                    x = next(batches)
            step(x)  # .item() synchronises with the device every step
            done += len(x)
        timings[mode] = done / (time.perf_counter() - start)
        print(f"anchor, {mode}: {timings[mode]:.1f} images/s (batch {args.batch}, {args.size} px, fp32 eager)", flush=True)
    return {"device": device_name(device), "batch": args.batch, "image_size": args.size, "steps": args.steps,
            "images_per_s_end_to_end": round(timings["end to end"], 2), "images_per_s_step_alone": round(timings["step alone"], 2)}
