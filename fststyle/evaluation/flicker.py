"""Flicker of a stylized video: the warping error of consecutive frames, and the floor it is judged against.

For each pair of consecutive frames, the optical flow of the *input* frames carries the previous
stylized frame onto the current one; the error is the mean absolute difference (8-bit steps, all
channels) between the current stylized frame and the warped previous one, over the pixels that the
flow says are visible in both frames (forward-backward consistency, the occlusion test of Sundaram et
al. 2010). Measured under two independent flows (fststyle.inference.flow): DIS, which the stabilizer follows,
and Farneback, so that stabilization is not graded only by its own flow.

Two references for each figure:

- the input video's own warping error: what the flow and the warp cannot explain even without any
  style. A stylization cannot reach it: a painting's strokes hold far more fine texture than the
  photo, and every sub-pixel error of the flow and the warp's blur cost in proportion to the texture
  they move (to first order, to the image's gradient), so even a perfectly steady stylization reads
  several times the input's error.
- the clip's consistent floor: that same input error scaled by the texture the stylized frames carry,
  the ratio of their mean absolute gradient to the input's (per frame pair, where the flow sees both
  frames). It stands for a stylization that moves exactly as the scene does with the model's strokes:
  the lowest any steady stylization of this clip can read. Checked on pans of real photos, where such
  a perfectly steady stylization can be made (scripts/flicker_floor.py; docs/inference.md, "A fair
  yardstick"). ``flicker_floor_ratio`` is the stylization's error over it. (Carrying a stylized frame
  along the clip by a second flow, the other way to make a steady stylization, mixes that flow's own
  errors into the floor: on a pan whose steady stylization reads 0.14 under Farneback's flow, the one
  carried by DIS read 0.48.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fststyle.inference.flow import FLOWS, MIN_SIDE, Flow, gray

if TYPE_CHECKING:
    import torch


def masked_error(now: np.ndarray, warped: np.ndarray, visible: np.ndarray) -> float:
    """Mean absolute difference (8-bit steps) over the visible pixels."""
    return float(np.abs(now.astype(np.float32) - warped)[visible].mean())


def warping_errors(previous: np.ndarray, current: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]],
                   flow: Flow | None = None) -> list[float]:
    """For input frames ``previous`` -> ``current`` ((H, W, 3) uint8 RGB), the warping error of each
    (previous, current) pair of frames of the same size (e.g. the stylized frames, the input frames)
    under ``flow`` (default: DIS)."""
    match = (flow or Flow("dis")).correspondence(gray(previous), gray(current))
    if not match.visible.any():
        return [float("nan")] * len(pairs)
    return [masked_error(now, match.warp(before), match.visible) for before, now in pairs]


def texture(frame: np.ndarray, where: np.ndarray) -> float:
    """Mean absolute gradient (8-bit steps per pixel, neighbours across and down, all channels) of an
    (H, W, 3) frame over ``where``: how much a small misplacement of it costs."""
    image = frame.astype(np.float32)
    across = np.abs(np.diff(image, axis=1, append=image[:, -1:]))
    down = np.abs(np.diff(image, axis=0, append=image[-1:]))
    return float((across + down)[where].mean())


class FlickerMeter:
    """Accumulates the warping error over a video's frames as they stream by: ``update`` with the
    input frames and the stylized ones ((N, H, W, 3) uint8 each, in order), ``result`` at the end."""

    def __init__(self, flows: tuple[str, ...] = FLOWS) -> None:
        self.flows = {kind: Flow(kind) for kind in flows}
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.errors: dict[str, list[tuple[float, float]]] = {kind: [] for kind in flows}
        self.floors: dict[str, list[float]] = {kind: [] for kind in flows}

    def update(self, frames: np.ndarray, stylized: np.ndarray) -> None:
        for frame, styled in zip(frames, stylized):
            if self.previous is not None and self.previous[0].shape == frame.shape and min(frame.shape[:2]) >= MIN_SIDE:
                self._pair(*self.previous, frame, styled)
            self.previous = (frame, styled)

    def _pair(self, before: np.ndarray, before_styled: np.ndarray, frame: np.ndarray, styled: np.ndarray) -> None:
        previous_gray, current_gray = gray(before), gray(frame)
        for kind, flow in self.flows.items():
            match = flow.correspondence(previous_gray, current_gray)
            if match.visible.any():
                own = masked_error(frame, match.warp(before), match.visible)
                self.errors[kind].append((masked_error(styled, match.warp(before_styled), match.visible), own))
                self.floors[kind].append(own * texture(styled, match.visible) / max(texture(frame, match.visible), 1e-6))

    def result(self) -> dict[str, float | int | None]:
        """Under DIS: ``flicker`` (stylized), ``flicker_input`` (the input's own), ``flicker_ratio`` (the
        two's ratio), ``flicker_floor`` (the consistent floor) and ``flicker_floor_ratio`` (stylized /
        floor), and the frame pairs counted; the same with a ``_farneback`` suffix under the second flow."""
        out: dict[str, float | int | None] = {}
        for kind, errors in self.errors.items():
            suffix = "" if kind == "dis" else f"_{kind}"
            stylized, own = (float(np.mean(column)) for column in zip(*errors)) if errors else (None, None)
            floor = float(np.mean(self.floors[kind])) if self.floors[kind] else None
            out |= {f"flicker{suffix}": stylized, f"flicker_input{suffix}": own, f"flicker_ratio{suffix}": stylized / own if own else None,
                    f"flicker_floor{suffix}": floor, f"flicker_floor_ratio{suffix}": stylized / floor if floor else None}
        out["frame_pairs"] = len(next(iter(self.errors.values())))
        return out


def frames_of(batch: "torch.Tensor") -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8, as a video's frames are written."""
    return (batch.detach().float() * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


def against_plain(result: dict[str, float | int | None], plain: dict[str, float | int | None]) -> dict[str, float | None]:
    """A stabilized video's flicker as a ratio to the plain per-frame model's, under each flow."""
    return {f"flicker_vs_plain{suffix}": result[f"flicker{suffix}"] / plain[f"flicker{suffix}"]
            if result.get(f"flicker{suffix}") and plain.get(f"flicker{suffix}") else None for suffix in ("", "_farneback")}


def summary(result: dict[str, float | int | None]) -> str:
    """One line of a FlickerMeter's result: the stylized video's flicker under each flow, against the
    input's own, against the clip's consistent floor and, for a stabilized video, against the plain
    model's. An input that does not move (a still shot, a black intro) has no error of its own to
    divide by: the absolute figures are given and the line says so."""
    if not result["frame_pairs"]:
        return f"flicker not measured: no pair of frames could be matched (frames under {MIN_SIDE} px have no optical flow; a video needs two frames)"

    def against(suffix: str) -> str:
        own, floor = result.get(f"flicker_input{suffix}"), result.get(f"flicker_floor{suffix}")
        parts = [f"{result[f'flicker{suffix}']:.2f}"]
        parts.append(f"{result[f'flicker_ratio{suffix}']:.2f}x the input's own {own:.2f}" if own else "the input does not move")
        if floor:
            parts.append(f"{result[f'flicker_floor_ratio{suffix}']:.2f}x the consistent floor {floor:.2f}")
        if result.get(f"flicker_vs_plain{suffix}"):
            parts.append(f"{result[f'flicker_vs_plain{suffix}']:.2f}x the plain model's")
        return ", ".join(parts)

    line = f"flicker {against('')}"
    if result.get("flicker_farneback") is not None:
        line += f"; with Farneback's flow {against('_farneback')}"
    if not result["flicker_input"]:
        line += " (no motion in the input: its own warping error is 0, so there is no ratio to it)"
    return line + f"; 8-bit warping error over {result['frame_pairs']} frame pairs"
