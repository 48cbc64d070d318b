"""Video in, video out (PyAV): frames are stylized in batches and re-encoded with the input's timing
(each frame keeps its timestamp: variable frame rates and a late start stay in sync with the sound);
the audio track is copied unchanged when the output container can hold its codec."""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fststyle.errors import UserError
from fststyle.files import atomic_write
from fststyle.images import find_files, is_image_file, to_uint8

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
# The encoder per container, and which audio codecs each container can take as they are (None: any).
VIDEO_CODEC = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
AUDIO_COPYABLE: dict[str, set[str] | None] = {
    ".mp4": {"aac", "mp3", "alac", "ac3", "opus", "flac"},
    ".mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le"},
    ".mkv": None,
    ".webm": {"opus", "vorbis"},
    ".avi": {"mp3", "ac3", "aac", "pcm_s16le"},
}


def is_video(path: str | Path) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def is_media(path: str | Path) -> bool:
    """An image or a video, by its file name."""
    return is_image_file(path) or is_video(path)


def find_media(root: str | Path) -> list[Path]:
    """The images and videos below ``root``, recursively, sorted."""
    return find_files(root, is_media)


def _av():
    try:
        import av
    except ImportError as err:
        raise UserError("videos need PyAV: pip install av") from err
    return av


def frame_count(path: str | Path) -> int | None:
    """Frames in the first video stream, when the container says (for the progress bar)."""
    with _av().open(str(path)) as container:
        return container.streams.video[0].frames or None if container.streams.video else None


def output_size(width: int, height: int, long_side: int | None, codec: str = "libx264") -> tuple[int, int]:
    """Frame size of the output: the input's exactly, or scaled so that its long side is ``long_side``
    exactly; the short side is then rounded to the nearest even number for H.264, whose 4:2:0 needs even
    sizes (within a pixel of the aspect ratio). Odd sizes that were asked for stay (pixel_format)."""
    if not long_side:
        return width, height
    scale = long_side / max(width, height)
    short = min(width, height) * scale
    short = max(2, 2 * round(short / 2)) if codec == "libx264" else max(1, round(short))
    return (long_side, short) if width >= height else (short, long_side)


def pixel_format(codec: str, width: int, height: int) -> str:
    """4:2:0 chroma, what every player plays; H.264 holds it only at even sizes, so an odd width or
    height is written as 4:4:4 (full chroma), which keeps the size exactly (some players refuse it)."""
    return "yuv444p" if codec == "libx264" and (width % 2 or height % 2) else "yuv420p"


class FrameTimes:
    """Output timestamps in ``out_base`` from input ones in ``in_base``, strictly increasing (an encoder
    refuses two frames at one time). A frame without a timestamp follows the last at ``rate``."""

    def __init__(self, in_base: Fraction, out_base: Fraction, rate: Fraction):
        self.in_base, self.out_base, self.step = in_base, out_base, max(1, round(1 / (rate * out_base)))
        self.last: int | None = None

    def __call__(self, pts: int | None) -> int:
        if pts is None:
            out = 0 if self.last is None else self.last + self.step
        else:
            out = round(pts * self.in_base / self.out_base)
        if self.last is not None and out <= self.last:
            out = self.last + 1
        self.last = out
        return out


def stylize_video(src: str | Path, dst: str | Path, stylize: Callable[[torch.Tensor], torch.Tensor], long_side: int | None = None,
                  batch_size: int = 4, on_frames: Callable[[int], None] | None = None,
                  observe: Callable[[np.ndarray, np.ndarray], None] | None = None) -> int:
    """Write ``dst`` with every frame of ``src`` passed through ``stylize`` ((N, 3, H, W) [0, 1] ->
    same). Written to a temporary file first, renamed when complete. Returns the frame count.
    ``observe`` gets each batch of input frames and their stylized frames, (N, H, W, 3) uint8 each, in
    order (e.g. a fststyle.evaluation.flicker.FlickerMeter's update)."""
    import torch

    av = _av()
    src, dst = Path(src), Path(dst)
    suffix = dst.suffix.lower()
    if suffix not in VIDEO_CODEC:
        raise ValueError(f"cannot write video {dst}: use one of {', '.join(VIDEO_EXTENSIONS)}")
    written = 0
    with atomic_write(dst) as tmp, av.open(str(src)) as inp:
        if not inp.streams.video:
            raise ValueError("holds no video stream (sound only?); nothing written")
        with av.open(str(tmp), "w") as out:
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            rate = Fraction(vin.average_rate or vin.guessed_rate or 30)
            width, height = output_size(vin.codec_context.width, vin.codec_context.height, long_side, VIDEO_CODEC[suffix])
            vout = out.add_stream(VIDEO_CODEC[suffix], rate=rate)
            vout.width, vout.height, vout.pix_fmt = width, height, pixel_format(VIDEO_CODEC[suffix], width, height)
            if vout.pix_fmt != "yuv420p":
                log.warning("%s: %dx%d is an odd size, which H.264 holds only as 4:4:4 video (some players refuse it); "
                            "size= with an even result, or .webm, gives 4:2:0", dst, width, height)
            # The input's own time base keeps every timestamp exactly; AVI holds only a constant rate.
            keeps_times = suffix != ".avi" and vin.time_base is not None
            vout.time_base = vout.codec_context.time_base = Fraction(vin.time_base) if keeps_times else 1 / rate
            times = FrameTimes(Fraction(vin.time_base or 1 / rate), Fraction(vout.time_base), rate)
            if VIDEO_CODEC[suffix] == "libx264":
                vout.options = {"crf": "18"}
            ain = inp.streams.audio[0] if inp.streams.audio else None
            aout = None
            if ain is not None:
                allowed = AUDIO_COPYABLE[suffix]
                if allowed is None or ain.codec_context.name in allowed:
                    aout = out.add_stream_from_template(ain)
                else:
                    log.warning("%s: audio codec %s cannot go into %s as it is; the output has no sound (use .mkv to keep it)",
                                src, ain.codec_context.name, suffix)

            pending: list[np.ndarray] = []
            pending_pts: list[int | None] = []

            def flush() -> None:
                nonlocal written
                if not pending:
                    return
                frames = np.stack(pending)
                styled = [to_uint8(image) for image in stylize(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)]
                if observe:
                    observe(frames, np.stack(styled))
                for image, pts in zip(styled, pending_pts):
                    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                    frame.pts = times(pts)
                    frame.time_base = times.out_base  # not vout.time_base: the muxer may change that (mkv: 1/1000)
                    written += 1
                    for packet in vout.encode(frame):
                        out.mux(packet)
                if on_frames:
                    on_frames(len(pending))
                pending.clear()
                pending_pts.clear()

            for packet in inp.demux(*[s for s in (vin, ain) if s is not None]):
                if packet.stream is ain:
                    if aout is not None and packet.dts is not None:
                        packet.stream = aout
                        out.mux(packet)
                    continue
                for frame in packet.decode():
                    pending.append(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
                    pending_pts.append(frame.pts)
                    if len(pending) == batch_size:
                        flush()
            flush()
            if written == 0:  # e.g. an empty video stream beside an audio track: no sound-only file
                raise ValueError("no video frame could be decoded; nothing written")
            for packet in vout.encode():
                out.mux(packet)
    return written
