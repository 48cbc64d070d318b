"""What ``python -m fststyle.infer`` does with PyTorch: stylize the images, folders and videos a command
names (without ``model=``: the packaged model, ``style=NAME``). The command itself is fststyle.infer."""

from __future__ import annotations

import glob
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from fststyle import CONF_DIR
from fststyle.cli import OUT_OF_MEMORY_HINT, run_cli
from fststyle.errors import first_line, whole_in
from fststyle.files import check_not_an_input
from fststyle.images import check_size, load_tensor, save_image
from fststyle.inference.stylizer import Stylizer
from fststyle.evaluation.flicker import FlickerMeter, against_plain, frames_of, summary as flicker_summary
from fststyle.inference.stabilize import Stabilizer, strength_of
from fststyle.inference.video import find_media, frame_count, is_media, is_video, stylize_video


class Plan(NamedTuple):
    jobs: list[tuple[Path, Path]]  # (source, destination)
    earlier_outputs: list[Path]  # files found under the input that this command writes: not inputs


def plan(input: str, output: str) -> Plan:
    """(source, destination) pairs. A folder or glob input mirrors its tree under the output folder.
    A file found under the input that is the destination of another input (an earlier run's output,
    e.g. with the output folder inside the input folder) is no input: it is written again, not
    stylized again. Every other file is an input, also when the output folder holds the input folder.
    No destination may be an input: that would destroy it."""
    src = Path(input).expanduser()
    out = Path(output).expanduser()
    earlier: list[Path] = []
    if src.is_file():
        jobs = [(src, out / src.name if out.is_dir() or output.endswith(("/", "\\")) else out)]
    else:
        if src.is_dir():
            base, files = src, find_media(src)
        elif glob.has_magic(input):
            files = sorted(Path(p) for p in glob.glob(input, recursive=True) if is_media(p))
            prefix = input[: min(input.index(c) for c in "*?[" if c in input)]
            base = Path(prefix if prefix.endswith(("/", "\\")) else Path(prefix).parent or ".")
        else:
            raise FileNotFoundError(f"input not found: {src.resolve()}")
        if out.suffix and is_media(out):
            raise ValueError(f"output={output} is a file name, but input={input} has several files: give a folder")
        if not files:
            raise FileNotFoundError(f"no images or videos found in {input}")
        writes = {(out / f.relative_to(base)).resolve(): f for f in files}
        earlier = [f for f in files if writes.get(f.resolve(), f) != f]
        jobs = [(f, out / f.relative_to(base)) for f in files if f not in set(earlier)]
    check_not_an_input(output, jobs)
    return Plan(jobs, earlier)


def check_writable(folder: Path) -> None:
    """Fail before any work when the output folder cannot be created or written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fststyle-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"cannot write to the output folder {folder.resolve()}: {err.strerror or err}") from err


def _read(path: Path, size: int | None) -> torch.Tensor | Exception:
    try:
        return load_tensor(path, size)
    except Exception as err:  # reported per file; the others go on
        return err


def _read_ahead(pool: ThreadPoolExecutor, jobs: list[tuple[Path, Path]], size: int | None, ahead: int = 8) -> Iterator[tuple[Path, Path, Any]]:
    """Decode up to ``ahead`` images in the background while the network works; in order."""
    queue: deque = deque()
    for job in jobs:
        queue.append((job, pool.submit(_read, job[0], size)))
        if len(queue) > ahead:
            (src, dst), future = queue.popleft()
            yield src, dst, future.result()
    while queue:
        (src, dst), future = queue.popleft()
        yield src, dst, future.result()


def _same_size_batches(items: Iterator[tuple[Path, Path, Any]], batch_size: int) -> Iterator[list[tuple[Path, Path, Any]]]:
    """Group consecutive readable images of the same size (errors travel alone)."""
    group: list[tuple[Path, Path, Any]] = []
    for item in items:
        image = item[2]
        if group and (isinstance(image, Exception) or len(group) == batch_size or image.shape != group[0][2].shape):
            yield group
            group = []
        if isinstance(image, Exception):
            yield [item]
        else:
            group.append(item)
    if group:
        yield group


def infer(cfg: DictConfig) -> int:
    """Stylize everything ``cfg.input`` names; returns the number of failed files."""
    check_size(cfg.size)
    whole_in(cfg.batch_size, 1, 4096, f"batch_size must be a whole number >= 1, got {cfg.batch_size}")
    jobs, earlier = plan(str(cfg.input), str(cfg.output))
    if earlier:
        shown = ", ".join(str(p) for p in earlier[:3]) + (f" and {len(earlier) - 3} more" if len(earlier) > 3 else "")
        print(f"note: {len(earlier)} file(s) under the input are this command's own outputs of other inputs (an earlier run): "
              f"written again, not stylized again: {shown}", file=sys.stderr)
    stylizer = Stylizer.load(cfg.model, device=cfg.device, precision=cfg.precision, compile=cfg.compile, max_memory=cfg.max_memory)
    stylizer.notify = lambda message: tqdm.write(message, file=sys.stderr)  # Hydra's disabled logging would swallow it
    options = {"strength": cfg.strength, "preserve_color": cfg.preserve_color, "tile": cfg.tile, "stroke": cfg.stroke,
               "style": None if cfg.style is None else str(cfg.style)}
    stylizer.check_options(**options)  # bad values fail before any work
    options["strength"] = float(options["strength"])
    steadiness = strength_of(cfg.stabilize)
    for folder in sorted({dst.parent for _, dst in jobs}, key=lambda p: len(p.parts))[:1]:
        check_writable(folder)
    stylize = lambda batch: stylizer.run(batch, **options)  # noqa: E731
    images = [(s, d) for s, d in jobs if not is_video(s)]
    videos = [(s, d) for s, d in jobs if is_video(s)]
    written, failed, frames = [], [], 0
    start = time.perf_counter()

    def fail(path: Path, err: BaseException) -> None:
        failed.append(path)
        reason = OUT_OF_MEMORY_HINT if isinstance(err, torch.OutOfMemoryError) else first_line(err)
        tqdm.write(f"error: {path}: {reason}", file=sys.stderr)

    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(total=len(images), unit="img", disable=len(images) < 2) as bar:
        pending_writes = []
        for group in _same_size_batches(_read_ahead(pool, images, cfg.size), cfg.batch_size):
            if isinstance(group[0][2], Exception):
                fail(group[0][0], group[0][2])
                bar.update(1)
                continue
            try:
                result = stylize(torch.stack([image for _, _, image in group])).cpu()
            except Exception as err:  # e.g. out of memory for one huge image: report it, go on
                for src, _, _ in group:
                    fail(src, err)
                bar.update(len(group))
                continue
            for (src, dst, _), image in zip(group, result):
                pending_writes.append((src, dst, pool.submit(save_image, image, dst)))
            bar.update(len(group))
        for src, dst, future in pending_writes:
            try:
                future.result()
                written.append(dst)
            except Exception as err:
                fail(src, err)

    for src, dst in videos:
        try:  # one unreadable video is reported, the others are still written
            meter = FlickerMeter() if cfg.flicker else None
            plain = FlickerMeter() if cfg.flicker and steadiness > 0 else None  # the same frames before stabilization
            stabilizer = Stabilizer(steadiness)  # one per video: its state is the previous frame

            def run(batch: torch.Tensor, stabilizer: Stabilizer = stabilizer, plain: FlickerMeter | None = plain) -> torch.Tensor:
                styled = stylize(batch)
                if plain is not None:
                    plain.update(frames_of(batch), frames_of(styled))
                return stabilizer.run(batch, styled)

            with tqdm(total=frame_count(src), unit="frame", desc=src.name) as bar:
                frames += stylize_video(src, dst, run, cfg.size, cfg.batch_size, on_frames=bar.update, observe=meter.update if meter else None)
            written.append(dst)
            if meter:
                result = meter.result() | (against_plain(meter.result(), plain.result()) if plain else {})
                tqdm.write(f"{dst.name}: {flicker_summary(result)}")
        except Exception as err:
            fail(src, err)

    elapsed = time.perf_counter() - start
    rate = f"{frames / elapsed:.1f} frames/s" if videos else f"{len(written) / elapsed:.2f} images/s"
    for path in written if len(jobs) == 1 else []:
        print(f"wrote: {path.resolve()}")
    model = stylizer.metadata.get("style_name", "?")
    style = f"model {model}, style {options['style']}" if len(stylizer.styles) > 1 else f"style {model}"
    print(f"{len(written)} written, {len(failed)} failed in {elapsed:.1f} s ({rate}; {style})")
    return len(failed)


# The config lives in conf/cli/, away from the training config groups, so that `model=PATH` is a
# plain value and not a choice of the conf/model/ group.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR / "cli"), config_name="infer")
def main(cfg: DictConfig) -> None:
    if run_cli(lambda: infer(cfg)):
        sys.exit(1)
