"""Flicker of a stylized video: the warping error of consecutive frames.

For each pair of consecutive frames, the optical flow of the *input* frames carries the previous
stylized frame onto the current one; the error is the mean absolute difference (8-bit steps, all
channels) between the current stylized frame and the warped previous one, over the pixels that the
flow says are visible in both frames (forward-backward consistency, the occlusion test of Sundaram et
al. 2010). The same error of the input video itself is the floor: what the flow and the warp cannot
explain even without any style. Measured under two independent flows (fststyle.flow): DIS, which the
stabilizer follows, and Farneback, so that stabilization is not graded only by its own flow.
"""

from __future__ import annotations

import numpy as np

from fststyle.flow import FLOWS, MIN_SIDE, Flow, gray


def warping_errors(previous: np.ndarray, current: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]],
                   flow: Flow | None = None) -> list[float]:
    """For input frames ``previous`` -> ``current`` ((H, W, 3) uint8 RGB), the warping error of each
    (previous, current) pair of frames of the same size (e.g. the stylized frames, the input frames)
    under ``flow`` (default: DIS)."""
    match = (flow or Flow("dis")).correspondence(gray(previous), gray(current))
    if not match.visible.any():
        return [float("nan")] * len(pairs)
    return [float(np.abs(now.astype(np.float32) - match.warp(before))[match.visible].mean()) for before, now in pairs]


class FlickerMeter:
    """Accumulates the warping error over a video's frames as they stream by: ``update`` with the
    input frames and the stylized ones ((N, H, W, 3) uint8 each, in order), ``result`` at the end."""

    def __init__(self, flows: tuple[str, ...] = FLOWS) -> None:
        self.flows = {kind: Flow(kind) for kind in flows}
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.errors: dict[str, list[tuple[float, float]]] = {kind: [] for kind in flows}

    def update(self, frames: np.ndarray, stylized: np.ndarray) -> None:
        for frame, styled in zip(frames, stylized):
            if self.previous is not None:
                before, before_styled = self.previous
                for kind, flow in self.flows.items():
                    error, floor = warping_errors(before, frame, [(before_styled, styled), (before, frame)], flow)
                    if np.isfinite(error):
                        self.errors[kind].append((error, floor))
            self.previous = (frame, styled)

    def result(self) -> dict[str, float | int | None]:
        """``flicker`` (stylized), ``flicker_input`` (the floor), their ratio and the frame pairs counted,
        under DIS; the same three with a ``_farneback`` suffix under the second flow."""
        out: dict[str, float | int | None] = {}
        for kind, errors in self.errors.items():
            suffix = "" if kind == "dis" else f"_{kind}"
            stylized, floor = (float(np.mean(column)) for column in zip(*errors)) if errors else (None, None)
            out |= {f"flicker{suffix}": stylized, f"flicker_input{suffix}": floor,
                    f"flicker_ratio{suffix}": stylized / floor if floor else None}
        out["frame_pairs"] = len(next(iter(self.errors.values())))
        return out


def summary(result: dict[str, float | int | None]) -> str:
    """One line of a FlickerMeter's result: the stylized video's flicker, the input's own and their
    ratio under each flow. An input that does not move (a still shot, a black intro) has no error of
    its own to divide by: the absolute figures are given and the line says so."""
    if not result["frame_pairs"]:
        return f"flicker not measured: no pair of frames could be matched (frames under {MIN_SIDE} px have no optical flow; a video needs two frames)"
    parts = [f"flicker {result['flicker']:.2f}"]
    if not result["flicker_input"]:
        parts.append("(no motion in the input: its own warping error is 0, so there is no ratio")
        if result.get("flicker_farneback") is not None:
            parts[-1] += f"; with Farneback's flow {result['flicker_farneback']:.2f}"
        parts[-1] += ")"
    else:
        parts.append(f"(the input video's own: {result['flicker_input']:.2f}, {result['flicker_ratio']:.2f}x")
        if result.get("flicker_ratio_farneback") is not None:
            parts[-1] += f"; with Farneback's flow {result['flicker_ratio_farneback']:.2f}x"
        parts[-1] += ")"
    return " ".join(parts) + f", 8-bit warping error over {result['frame_pairs']} frame pairs"
