"""Flicker of a stylized video: the warping error of consecutive frames.

For each pair of consecutive frames, the optical flow of the *input* frames (OpenCV's DIS flow, no
downloaded weights) carries the previous stylized frame onto the current one; the error is the mean
absolute difference (8-bit steps, all channels) between the current stylized frame and the warped
previous one, over the pixels that the flow says are visible in both frames (forward-backward
consistency, the occlusion test of Sundaram et al. 2010). The same error of the input video itself is
the floor: what the flow and the warp cannot explain even without any style.
"""

from __future__ import annotations

import numpy as np


def _cv2():
    try:
        import cv2
    except ImportError as err:  # a dependency; say how to get it if an environment lacks it
        raise ImportError("the flicker metric needs OpenCV: pip install opencv-python-headless") from err
    return cv2


def _gray(frame: np.ndarray) -> np.ndarray:
    return _cv2().cvtColor(frame, _cv2().COLOR_RGB2GRAY)


def warping_errors(previous: np.ndarray, current: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """For input frames ``previous`` -> ``current`` ((H, W, 3) uint8 RGB), the warping error of each
    (previous, current) pair of frames of the same size (e.g. the stylized frames, the input frames)."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    g0, g1 = _gray(previous), _gray(current)
    backward = dis.calc(g1, g0, None)  # for each pixel of the current frame: where it was in the previous one
    forward = dis.calc(g0, g1, None)
    h, w = g1.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
    forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR)
    # Visible in both: going back and forth again returns (nearly) to the start, and stays in the frame.
    mismatch = np.square(backward + forward_there).sum(-1)
    visible = (mismatch <= 0.01 * (np.square(backward).sum(-1) + np.square(forward_there).sum(-1)) + 0.5)
    visible &= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    if not visible.any():
        return [float("nan")] * len(pairs)
    errors = []
    for before, now in pairs:
        warped = cv2.remap(before.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
        errors.append(float(np.abs(now.astype(np.float32) - warped)[visible].mean()))
    return errors


class FlickerMeter:
    """Accumulates the warping error over a video's frames as they stream by: ``update`` with the
    input frames and the stylized ones ((N, H, W, 3) uint8 each, in order), ``result`` at the end."""

    def __init__(self) -> None:
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.stylized: list[float] = []
        self.input: list[float] = []

    def update(self, frames: np.ndarray, stylized: np.ndarray) -> None:
        for frame, styled in zip(frames, stylized):
            if self.previous is not None:
                before, before_styled = self.previous
                error, floor = warping_errors(before, frame, [(before_styled, styled), (before, frame)])
                if np.isfinite(error):
                    self.stylized.append(error)
                    self.input.append(floor)
            self.previous = (frame, styled)

    def result(self) -> dict[str, float | int | None]:
        """``flicker`` (stylized), ``flicker_input`` (the floor), their ratio and the frame pairs counted."""
        if not self.stylized:
            return {"flicker": None, "flicker_input": None, "flicker_ratio": None, "frame_pairs": 0}
        stylized, floor = float(np.mean(self.stylized)), float(np.mean(self.input))
        return {"flicker": stylized, "flicker_input": floor, "flicker_ratio": stylized / floor if floor > 0 else None,
                "frame_pairs": len(self.stylized)}
