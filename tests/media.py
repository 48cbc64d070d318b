"""Small generated media files for tests."""

from fractions import Fraction
from pathlib import Path

import numpy as np


def make_video(path: Path, frames: int = 6, size: tuple[int, int] = (64, 48), fps: int = 12, audio: bool = True,
               times_ms: list[int] | None = None, motion: int = 20, seconds_of_sound: float | None = None) -> Path:
    """A short H.264 (or VP9 for .webm) video of colour bars moving ``motion`` steps a frame (0: a still
    shot), with a 440 Hz AAC/Opus tone as long as the frames (or ``seconds_of_sound``: with
    ``frames=0``, a video stream without a frame beside the sound). ``times_ms``: each frame's time in
    milliseconds (a variable frame rate, a late start; the sound starts with the first frame), else
    ``fps`` from 0. Odd sizes are written as 4:4:4, which H.264 needs for them."""
    import av

    width, height = size
    base = Fraction(1, 1000) if times_ms else Fraction(1, fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx-vp9" if path.suffix == ".webm" else "libx264", rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv444p" if (width % 2 or height % 2) and path.suffix != ".webm" else "yuv420p"
        video.time_base = video.codec_context.time_base = base
        sound = out.add_stream("libopus" if path.suffix == ".webm" else "aac", rate=48000) if audio else None
        for i in range(frames):
            x = np.arange(width)[None, :, None]
            rgb = np.broadcast_to(((x * 4 + i * motion) % 256).astype(np.uint8), (height, width, 3)).copy()
            rgb[..., 1] = np.arange(height)[:, None] * 5 % 256
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = (times_ms[i] if times_ms else i), base
            for packet in video.encode(frame):
                out.mux(packet)
        if sound is not None:
            samples = round(48000 * seconds_of_sound) if seconds_of_sound is not None else 48000 * frames // fps
            t = np.arange(samples) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            chunk = 960 if path.suffix == ".webm" else 1024
            offset = times_ms[0] * 48 if times_ms else 0
            for start in range(0, samples - chunk + 1, chunk):
                af = av.AudioFrame.from_ndarray(tone[:, start : start + chunk], format="fltp", layout="mono")
                af.sample_rate = 48000
                af.pts = offset + start
                af.time_base = Fraction(1, 48000)
                for packet in sound.encode(af):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path


def probe(path: Path) -> dict:
    """Frame count (decoded), size, frame rate and audio codec of a video."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return {"frames": frames, "size": (v.codec_context.width, v.codec_context.height), "fps": float(v.average_rate), "audio": audio}


def panning(photo_path: Path, frames: int = 5, step: int = 3) -> np.ndarray:
    """A camera pan over a real photo: each frame the view moves ``step`` px right, (N, 120, 160, 3) uint8
    (frames * step <= 80)."""
    from PIL import Image

    image = np.asarray(Image.open(photo_path).convert("RGB").resize((240, 120)))
    return np.stack([image[:, i * step : i * step + 160] for i in range(frames)])
