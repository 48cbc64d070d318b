"""Optical flow between consecutive video frames (OpenCV; no downloaded weights): where each pixel of
the current frame was in the previous one, and where that correspondence can be trusted.

Two independent flows: DIS (Kroeger et al. 2016, what the stabilizer follows) and Farneback (2003,
a second judge for the flicker metric, so that a stabilizer built on one flow is not graded only by it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOWS = ("dis", "farneback")
# Frames smaller than this on a side get no flow: OpenCV's DIS refuses frames of under 12 px, and a flow
# over a handful of pixels would be noise anyway. Nothing of such a frame is matched (stabilization keeps
# the model's frames; the flicker meter counts no pair).
MIN_SIDE = 16


def cv2_module():
    try:
        import cv2
    except ImportError as err:  # a dependency; say how to get it if an environment lacks it
        raise ImportError("optical flow needs OpenCV: pip install opencv-python-headless") from err
    return cv2


def gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luminance, what the flows take."""
    cv2 = cv2_module()
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def channel_mean(image: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 -> (H, W), the mean over the channels. numpy's reduction over so short a last axis
    took 20 ms for a 640x360 frame, OpenCV's per-pixel transform 2 ms."""
    return cv2_module().transform(image, np.full((1, image.shape[-1]), 1.0 / image.shape[-1], np.float32))


@dataclass
class Correspondence:
    """For each pixel (y, x) of the current frame: its place (map_y, map_x) in the previous frame, and
    whether it is ``visible`` in both (inside the previous frame and, unless the correspondence was
    made without ``round_trip``, forward-backward consistent)."""

    map_x: np.ndarray
    map_y: np.ndarray
    visible: np.ndarray

    def warp(self, previous: np.ndarray, sharp: bool = False) -> np.ndarray:
        """``previous`` ((H, W) or (H, W, C), any dtype) carried onto the current frame, float32: bilinear,
        or with ``sharp`` Lanczos (8x8 taps), which blurs fine texture far less but may overshoot."""
        cv2 = cv2_module()
        method = cv2.INTER_LANCZOS4 if sharp else cv2.INTER_LINEAR
        return cv2.remap(previous.astype(np.float32), self.map_x, self.map_y, method, borderMode=cv2.BORDER_REPLICATE)


class Flow:
    """Dense optical flow of one kind (``dis`` or ``farneback``), reused frame after frame."""

    def __init__(self, kind: str = "dis"):
        if kind not in FLOWS:
            raise ValueError(f"unknown flow {kind!r}; choose {', '.join(FLOWS)}")
        cv2 = cv2_module()
        self.kind = kind
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if kind == "dis" else None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def _pixels(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's x and y, (H, W) float32 each: made once for a clip's frame size, not every frame."""
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = tuple(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
        return self._grid

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32: for each pixel of ``source`` (gray uint8), its displacement into ``target``."""
        if self._dis is not None:
            return self._dis.calc(source, target, None)
        return cv2_module().calcOpticalFlowFarneback(source, target, None, pyr_scale=0.5, levels=5, winsize=15, iterations=3,
                                                     poly_n=5, poly_sigma=1.2, flags=0)

    def correspondence(self, previous: np.ndarray, current: np.ndarray, round_trip: bool = True) -> Correspondence:
        """Between two gray frames. Visible: inside the previous frame and, with ``round_trip``, consistent
        by the forward-backward check of Sundaram et al. 2010 (going back and forth again must return nearly
        to the start; a second flow). Frames under MIN_SIDE: nothing visible."""
        cv2 = cv2_module()
        h, w = current.shape
        xs, ys = self._pixels(h, w)
        if min(h, w) < MIN_SIDE:
            return Correspondence(xs.copy(), ys.copy(), np.zeros((h, w), bool))
        backward = self(current, previous)
        map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
        visible = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        if round_trip:
            forward_there = cv2.remap(self(previous, current), map_x, map_y, cv2.INTER_LINEAR)
            # Squared lengths as twice the channel mean: OpenCV's per-pixel ops, 10x numpy's over the last axis.
            back_again = backward + forward_there
            mismatch = 2 * channel_mean(cv2.multiply(back_again, back_again))
            lengths = 2 * (channel_mean(cv2.multiply(backward, backward)) + channel_mean(cv2.multiply(forward_there, forward_there)))
            visible &= mismatch <= 0.01 * lengths + 0.5
        return Correspondence(map_x, map_y, visible)
