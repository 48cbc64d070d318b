"""Stylizer: run a style model (exported .pth, training .ckpt or .onnx) on images and frames."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fststyle.inference import banded
from fststyle.errors import UserError, float_in, whole_in
from fststyle.blend import style_blend, style_names
from fststyle.model_file import load_network
from fststyle.images import to_pil, to_tensor, to_uint8
from fststyle.net import TransformerNet
from fststyle.pixels import blend, check_blend_options, keep_colours, luminance
from fststyle.inference.stabilize import Stabilizer
from fststyle.inference.memory import forward_bytes, memory_budget, tile_for_budget
from fststyle.inference.tiling import MIN_TILE, stylize_tiled

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# stroke=auto paints any photo's strokes at the share of the picture they have at this long side:
# of the working sizes measured on a 4K photo (README, "Stroke size"), 1024 px came closest to the
# style of the 1024 px stylization (512 px, the paintings' training size, gave strokes far too large).
AUTO_LONG_SIDE = 1024
log = logging.getLogger(__name__)



def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def pick_precision(precision: str, device: torch.device) -> torch.dtype:
    """auto: fp32 on CUDA GPUs, fp16 on MPS; on the CPU bf16 where it computes in bf16 natively (4-5x
    faster than fp32 at 1024 px with both channels last, Xeon with AMX, 2026-12-06; pictures 0.44 of an
    8-bit level from fp32's on average), else fp32. On an H200 (2026-12-04, benchmarks/) fp32
    was 1.8x faster than bf16 at 1080p and 4K: the instance norms and the conversions around them cost
    more than bf16 saves on the convolutions, which take a quarter of the frame's time."""
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision={precision!r}; choose auto, {', '.join(PRECISIONS)}")
        return PRECISIONS[precision]
    if device.type == "cpu":
        return torch.bfloat16 if native_bf16_cpu() else torch.float32
    return torch.float16 if device.type == "mps" else torch.float32


def resample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, C, H, W): area averaging down (no aliasing), bicubic up."""
    if size[0] <= image.shape[-2] and size[1] <= image.shape[-1]:
        return F.interpolate(image, size=size, mode="area")
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False)


def restore_detail(coarse: torch.Tensor, photo: torch.Tensor, small: tuple[int, int]) -> torch.Tensor:
    """``coarse`` (stylized at ``small`` and enlarged to the photo's size) plus the photo's luminance
    detail finer than ``small`` can hold: big strokes, with the photo's edges sharp at full size."""
    light = luminance(photo)
    detail = light - resample(resample(light, small), light.shape[-2:])
    return (coarse + detail).clamp(0, 1)


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


class OnnxNetwork:
    """An exported .onnx model run by onnxruntime (no PyTorch model code needed)."""

    def __init__(self, path: str | Path, device: torch.device):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise UserError("running .onnx models needs onnxruntime: pip install onnxruntime") from err
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), providers=providers)
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = json.loads(props.get("fststyle", "{}"))

    def __call__(self, batch: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        names = [i.name for i in self.session.get_inputs()]
        feed = {names[0]: batch.float().cpu().numpy()}
        if style is not None:
            feed[names[1]] = style.float().cpu().numpy()
        return torch.from_numpy(self.session.run(None, feed)[0]).to(batch.device)


class Stylizer:
    """One style model, ready to run.

    Calling it returns the same kind of image it was given: PIL -> PIL (RGB), uint8 (H, W, 3) array ->
    uint8 array, float tensor in [0, 1] ((3, H, W) or (N, 3, H, W)) -> float tensor on the input's
    device. The output has the input's size. Options per call:
    ``strength`` in [0, 1] blends with the photo (0: the photo, 1: the full style);
    ``preserve_color`` keeps the photo's colours (only luminance is transferred);
    ``tile`` (px) stylizes in overlapping tiles to bound memory (PyTorch models only); without it,
    images whose pass would not fit ``max_memory`` (see ``fststyle.inference.memory.memory_budget``) are run in
    row bands (or tiles, where bands do not fit or the network is not the default kind), with one
    warning per image size;
    ``stroke`` scales the strokes relative to the picture (see ``stroke_factor``);
    ``style`` picks or blends the styles of a model that holds several (see ``style_weights``).
    """

    def __init__(self, net: TransformerNet | OnnxNetwork, metadata: dict[str, Any] | None = None, device: str | torch.device = "auto",
                 precision: str = "auto", compile: bool = False, max_memory: str | int | None = "auto"):
        self.device = pick_device(device) if isinstance(device, str) else device
        self.metadata = metadata or {}
        memory_budget(max_memory, torch.device("cpu"))  # a bad value fails here, not at the first large image
        self.max_memory, self._announced = max_memory, set()
        self.notify: Callable[[str], None] = log.warning  # where memory_plan says what it did (infer: its own output)
        self.dtype, self.layout = torch.float32, torch.contiguous_format
        if isinstance(net, OnnxNetwork):
            self.net, self.module = net, None
            return
        self.dtype = pick_precision(precision, self.device)
        self.module = net.to(self.device).eval()
        if self.device.type == "cpu" and self.dtype in (torch.float32, torch.bfloat16):
            # A copy (the caller's network stays as it was) in the precision's own weights, channels last: oneDNN's
            # convolutions want channels last, and autocast casts each weight at each call. A 1024 px pass in
            # bf16 took a third of the time (Intel Xeon with AMX, 2026-12-06), in fp32 10-20% less. Other devices
            # stay channels first: on an H200 channels_last made fp32 frames 1.5-1.75x slower (2026-12-04, with the
            # instance norm of then, which converted each map back; benchmarks/2026-12-04_h200).
            self.layout = torch.channels_last
            self.module = copy.deepcopy(self.module).to(self.dtype, memory_format=self.layout)
        self.net = torch.compile(self.module, dynamic=True) if compile else self.module

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto", precision: str = "auto", compile: bool = False,
             max_memory: str | int | None = "auto") -> "Stylizer":
        """Load an exported ``.pth``, a training ``.ckpt``, an exported ``.onnx`` model, or ``packaged``: the
        model of the six packaged paintings that ships with fststyle (``python -m fststyle.styles``)."""
        dev = pick_device(device) if isinstance(device, str) else device
        if Path(path).suffix.lower() == ".onnx":
            if not Path(path).is_file():
                raise FileNotFoundError(f"model file not found: {Path(path).resolve()}")
            onnx_net = OnnxNetwork(path, dev)
            return cls(onnx_net, onnx_net.metadata, dev, max_memory=max_memory)
        net, metadata = load_network(path)
        return cls(net, metadata, dev, precision, compile, max_memory)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32 or self.module is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def stroke_factor(self, stroke: float | str, size: tuple[int, int]) -> float:
        """How many times larger than the network paints them the strokes become, relative to the
        picture: the network runs on the photo shrunk by this factor, and its result is enlarged back
        with the photo's fine luminance detail (``restore_detail``). ``auto``: the strokes cover the share
        of the picture they cover at a long side of AUTO_LONG_SIDE px (so a 4K photo is painted like its
        1024 px version, not as a recolouring); never below 1 (smaller photos are not enlarged)."""
        if stroke == "auto":
            return max(1.0, max(size) / AUTO_LONG_SIDE)
        return float_in(stroke, 0.125, 64, f"stroke must be auto or a factor in [0.125, 64], got {stroke}")

    @property
    def styles(self) -> list[str]:
        """The names of the styles this model holds."""
        return style_names(self.metadata)

    def style_weights(self, style: str | dict[str, float] | None) -> torch.Tensor | None:
        """(1, styles) weights for a model of several styles (fststyle.blend.style_blend); None for a
        one-style model."""
        weights = style_blend(style, self.styles, self.metadata.get("style_name"))
        return None if weights is None else torch.tensor([weights], dtype=torch.float32)

    def check_options(self, strength: float = 1.0, preserve_color: bool = False, tile: int | None = None, stroke: float | str = 1.0,
                      style: str | dict[str, float] | None = None) -> None:
        """Raise ValueError now, in one line, for any option that ``run`` would refuse (or misuse) at the
        first image: a command checks them once, before any work."""
        check_blend_options(strength, preserve_color)
        if tile is not None and tile != 0:
            whole_in(tile, MIN_TILE, 1 << 20, f"tile must be a whole number of pixels >= {MIN_TILE} (or null), got {tile}")
            if self.module is None:
                raise ValueError("tile= needs a PyTorch model (.pth or .ckpt), not .onnx")
        self.stroke_factor(stroke, (1, 1))
        self.style_weights(style)

    def memory_plan(self, n: int, h: int, w: int) -> tuple[str, int | None]:
        """How a batch of n h x w images is run under ``max_memory``: ("whole", None) when the batch
        fits, ("one by one", None) when one image does, ("bands", rows) when banded inference fits
        (fststyle.inference.banded: exact, little slower), else ("tiles", tile) (fststyle.inference.tiling: exact, slower)."""
        budget = None if self.module is None else memory_budget(self.max_memory, self.device)
        width = getattr(self.module, "width", 0)
        if budget is None or n * forward_bytes(width, h, w) <= budget:
            return "whole", None
        if forward_bytes(width, h, w) <= budget:
            return "one by one", None
        rows = (budget - banded.stored_bytes(width, h, w)) // max(1, banded.band_bytes(width, w, 1))
        plan = ("bands", int(rows)) if banded.supports(self.module) and rows >= 16 else ("tiles", tile_for_budget(width, h, w, budget))
        if (h, w) not in self._announced:
            self._announced.add((h, w))
            self.notify(f"{w}x{h} px would need about {_size(forward_bytes(width, h, w))}, over the memory budget of {_size(budget)} "
                        f"(max_memory={self.max_memory}): stylized in {plan[0]} of {plan[1]} {'rows' if plan[0] == 'bands' else 'px'}")
        return plan

    def _stylize(self, photo: torch.Tensor, tile: int | None, style: torch.Tensor | None) -> torch.Tensor:
        batch_style = None if style is None else style.to(photo.device).expand(photo.shape[0], -1)
        one_style = None if style is None else style.to(photo.device)
        stats_size, plan = 1024, ("tiles", tile)
        if not tile:
            plan = self.memory_plan(*photo.shape[:1], *photo.shape[-2:])
            if plan[0] == "one by one":
                return torch.cat([self._stylize(p[None], None, style) for p in photo])
            stats_size = 0  # an untiled pass for the statistics is what does not fit
        if plan[0] == "whole":
            # The channels-last copy holds its weights in the precision already: no autocast, whose checks and casts
            # cost a third of a bf16 pass.
            in_precision = self.layout == torch.channels_last
            with contextlib.nullcontext() if in_precision else self._autocast():
                photo = photo.to(self.dtype if in_precision else torch.float32, memory_format=self.layout)
                out = self.net(photo) if batch_style is None else self.net(photo, batch_style)
            return out.float()
        if self.module is None:
            raise ValueError("tile= needs a PyTorch model (.pth or .ckpt), not .onnx")
        with self._autocast():
            if plan[0] == "tiles":
                out = torch.cat([stylize_tiled(self.module, p[None], plan[1], run=self.net, style=one_style, stats_size=stats_size)
                                 for p in photo])
            else:
                out = torch.cat([banded.stylize_banded(self.module, p[None], plan[1], one_style) for p in photo])
        return out.float()

    @torch.inference_mode()
    def run(self, batch: torch.Tensor, strength: float = 1.0, preserve_color: bool = False, tile: int | None = None,
            stroke: float | str = 1.0, style: str | dict[str, float] | None = None) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> the same shape, float32, on this Stylizer's device."""
        self.check_options(strength, preserve_color, tile, stroke, style)
        photo = batch.to(self.device, torch.float32)
        factor = self.stroke_factor(stroke, tuple(photo.shape[-2:]))
        weights = self.style_weights(style)
        if factor == 1.0:
            out = self._stylize(photo, tile, weights)
        else:
            small = (max(16, round(photo.shape[-2] / factor)), max(16, round(photo.shape[-1] / factor)))
            out = resample(self._stylize(resample(photo, small), tile, weights), tuple(photo.shape[-2:]))
            if factor > 1.0:
                out = restore_detail(out, photo, small)
        if preserve_color:
            out = keep_colours(out, photo)
        return blend(out, photo, strength)

    def stream(self, stabilize: bool | float | str = True, **options: Any) -> Callable[[ImageLike], ImageLike]:
        """For a caller's own frame loop (a webcam, a video decoder): a function that stylizes one frame
        after another (PIL images or uint8 (H, W, 3) arrays, in order) and steadies each against the
        previous one (fststyle.inference.stabilize; ``stabilize`` false, a strength in [0, 1] or true). ``options``
        as for a call. Take a new stream for each new video."""
        stabilizer = Stabilizer(stabilize)
        self.check_options(**options)

        def next_frame(frame: ImageLike) -> ImageLike:
            array = np.array(frame.convert("RGB")) if isinstance(frame, Image.Image) else frame  # a writable copy for torch
            if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError("a stream takes PIL images or uint8 (H, W, 3) arrays")
            styled = self.run(torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255, **options)[0]
            out = to_uint8(torch.from_numpy(stabilizer(array, styled.permute(1, 2, 0).cpu().numpy())).permute(2, 0, 1))
            return Image.fromarray(out) if isinstance(frame, Image.Image) else out

        return next_frame

    def __call__(self, image: ImageLike, **options: Any) -> ImageLike:
        if isinstance(image, Image.Image):
            return to_pil(self.run(to_tensor(image)[None], **options)[0])
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
            return to_uint8(self.run(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, **options)[0])
        if isinstance(image, torch.Tensor):
            batched = image if image.dim() == 4 else image[None]
            out = self.run(batched, **options).to(image.device)
            return out if image.dim() == 4 else out[0]
        raise TypeError(f"cannot stylize a {type(image).__name__}; pass a PIL image, a uint8 array or a tensor")
