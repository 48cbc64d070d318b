"""Steady stylized video at inference: each output frame is blended with the previous *output* frame,
carried onto it by the optical flow of the *input* frames, wherever that flow can be trusted.

A network that stylizes each frame on its own paints slightly different strokes on nearly the same
input: flicker. Where the input moved (or stayed) in a way the flow explains, the previous output moved
the same way is what the current output should be, so the two are blended (weight ``strength``).
Where the flow cannot be trusted, the model's own output is kept: pixels that come from outside the
frame, or whose input changed (hidden before, a new object, a light going on: the warped previous input
differs from the current one). That check on the input is what decides; the flicker meter's second flow
(the forward-backward check) added nothing to it on either shared clip at twice the flows' cost
(docs/inference.md, "Video"), so the stabilizer computes one flow a frame. A scene cut (most of the
frame untrusted) starts afresh. Only the previous frame is held, so memory does not grow with the video.

Blending two frames' strokes washes them out, and the loss the model was trained on punishes that
first; so each band of the detail of what is shown (four levels of a Laplacian pyramid, about 1 to 8 px)
is brought back to the contrast that band has in the model's own frame (``with_contrast_of``). The previous output is carried
by a Lanczos warp: a bilinear one blurs the strokes a little every frame, and that blur compounds.
Measured with the packaged Starry Night (docs/inference.md, "Video"; the model of 2026-12-05): the
default strength takes 15-17% of the flicker away on bigbuckbunny at +5.1% in the image objective; the
plain model's flicker there is only 1.4-1.6x the clip's consistent floor, what a perfectly steady stylization with its strokes reads, so
little more can go without taking the strokes' contrast with it. Nearest-pixel copies made no better
trade (at equal cost, as much flicker or more); neither did blending the network's features at a
quarter of the resolution, nor keeping the network's 4-pixel grid fixed on the moving scene.
"""

from __future__ import annotations

import numpy as np
import torch

from fststyle.errors import float_in
from fststyle.inference.flow import MIN_SIDE, Flow, channel_mean, cv2_module, gray

# Per pixel, the input's own change after the flow's warp (mean over RGB, 8-bit steps): up to LOW the
# flow explains the pixel fully; from HIGH on not at all (something new is there); linear between.
CHANGE_LOW, CHANGE_HIGH = 6.0, 20.0
# Trust is withdrawn this many pixels around every untrusted pixel, so that a moving edge, whose flow
# is uncertain on a band around it, is painted by the model rather than smeared from the last frame.
MARGIN = 2
# The blend of two frames' strokes has less contrast than either (texture is not averaged away, it is
# washed out); each band of its detail, the DETAIL_LEVELS finest levels of a Laplacian pyramid (about
# 1, 2, 4 and 8 px), is scaled back, locally (a Gaussian window of ENERGY_SIGMA pixels of its level), to
# the contrast that band has in the model's own frame, at most MAX_GAIN times.
DETAIL_LEVELS = 4
ENERGY_SIGMA = 2.0
MAX_GAIN = 3.0
# A scene cut: less than this share of the frame is trusted.
CUT_TRUSTED = 0.3
# stabilize=true (docs/inference.md, "Video without flicker"): the strength whose frames stay within
# about 5% of the plain frames' image objective with the packaged model on bigbuckbunny; stronger is
# steadier and paler. (0.45 with the model of 2026-12-02; its successor's stronger strokes cost more
# to blend: +6.5% at 0.45, +5.1% at 0.4; with the grid-term model of 2026-12-05 +6.1% at 0.4, +4.9% at 0.35.)
DEFAULT_STRENGTH = 0.35


def strength_of(stabilize: bool | float | str | None) -> float:
    """The ``stabilize=`` option as a strength in [0, 1]: false/0/None off, true the measured default."""
    if stabilize is None or stabilize is False:
        return 0.0
    if stabilize is True or str(stabilize).lower() == "true":
        return DEFAULT_STRENGTH
    if str(stabilize).lower() == "false":
        return 0.0
    return float_in(stabilize, 0.0, 1.0, f"stabilize must be true, false or a strength in [0, 1] (1 strongest), got {stabilize}")


def with_contrast_of(blend: np.ndarray, styled: np.ndarray) -> np.ndarray:
    """``blend`` with each band of its detail (DETAIL_LEVELS of a Laplacian pyramid) scaled, locally, to
    the contrast that band has in ``styled``: the strokes stay where the blend put them, as strong as the
    model paints them at every scale. (Restoring only the detail finer than 2 px left the blend's coarser
    strokes washed out: on bigbuckbunny the style loss rose 18% at strength 0.5 against 11.5% with four
    bands cut by Gaussian blurs of growing width at full size; the pyramid cuts about the same bands
    (style +10.4% against +9.0% at strength 0.45) about 5x faster, which the frame rate needed.)"""
    cv2 = cv2_module()

    def energy(band: np.ndarray) -> np.ndarray:
        return cv2.sqrt(cv2.GaussianBlur(channel_mean(cv2.multiply(band, band)), (0, 0), ENERGY_SIGMA))

    bands = []
    for _ in range(DETAIL_LEVELS):
        if min(blend.shape[:2]) < 2:  # nothing coarser to split off
            break
        size = (blend.shape[1], blend.shape[0])
        blend_low, styled_low = cv2.pyrDown(blend), cv2.pyrDown(styled)
        detail = cv2.subtract(blend, cv2.pyrUp(blend_low, dstsize=size))
        gain = cv2.min(cv2.divide(energy(cv2.subtract(styled, cv2.pyrUp(styled_low, dstsize=size))), cv2.max(energy(detail), 1e-4)), MAX_GAIN)
        bands.append(cv2.multiply(detail, cv2.merge((gain, gain, gain))))
        blend, styled = blend_low, styled_low
    for band in reversed(bands):
        blend = cv2.add(cv2.pyrUp(blend, dstsize=(band.shape[1], band.shape[0])), band)
    return np.clip(blend, 0.0, 1.0, out=blend)


class Stabilizer:
    """Stabilizes one stream of frames, in order: ``stabilizer(frame, styled)`` per frame (``frame`` the
    input, (H, W, 3) uint8 RGB; ``styled`` the model's output for it, (H, W, 3) float in [0, 1] or uint8)
    returns the output to show, float32 in [0, 1]. ``reset()`` before another stream; a change of frame
    size resets by itself. ``cuts`` counts the scene cuts met."""

    def __init__(self, strength: bool | float | str | None = DEFAULT_STRENGTH):
        self.strength = strength_of(strength)
        self.flow = Flow("dis")
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # input, its gray, output

    def trust(self, previous: np.ndarray, previous_gray: np.ndarray, frame: np.ndarray, frame_gray: np.ndarray):
        """Per pixel of ``frame``, how far the flow from ``previous`` can be trusted (0..1), and the
        correspondence itself."""
        cv2 = cv2_module()
        match = self.flow.correspondence(previous_gray, frame_gray, round_trip=False)
        change = channel_mean(cv2.absdiff(frame.astype(np.float32), match.warp(previous)))
        trusted = np.clip((CHANGE_HIGH - change) / (CHANGE_HIGH - CHANGE_LOW), 0.0, 1.0) * match.visible
        kernel = np.ones((2 * MARGIN + 1, 2 * MARGIN + 1), np.uint8)
        return cv2.erode(trusted, kernel), match

    def __call__(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        styled = styled.astype(np.float32) / 255 if styled.dtype == np.uint8 else styled.astype(np.float32)
        frame_gray = gray(frame)
        carried = shown = styled  # what the next frame is blended with, and what is shown now
        # Frames too small for a flow (MIN_SIDE) are shown as the model paints them; no scene cut is counted.
        if self.strength > 0 and self._previous is not None and self._previous[0].shape == frame.shape and min(frame.shape[:2]) >= MIN_SIDE:
            previous, previous_gray, previous_out = self._previous
            trusted, match = self.trust(previous, previous_gray, frame, frame_gray)
            if trusted.mean() < CUT_TRUSTED:
                self.cuts += 1
            else:
                # OpenCV's per-pixel blend and copy, about 10x numpy's broadcast over channels (blendLinear
                # divides by the weights' sum plus 1e-5: a relative 1e-5, far below an 8-bit step).
                cv2 = cv2_module()
                weight = self.strength * trusted
                carried = cv2.blendLinear(np.clip(match.warp(previous_out, sharp=True), 0.0, 1.0), styled, weight, 1 - weight)
                shown = with_contrast_of(carried, styled)
                cv2.copyTo(styled, (weight == 0).view(np.uint8), shown)  # untrusted pixels: exactly the model's
        # A copy: a caller that reuses its frame buffer (a camera loop) would otherwise change the kept frame.
        self._previous = (frame.copy(), frame_gray, carried)
        return shown

    def run(self, frames: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
        """A batch of consecutive frames: ``frames`` (N, 3, H, W) in [0, 1] (the input, as
        fststyle.inference.video gives it) and ``styled`` (N, 3, H, W), -> the stabilized (N, 3, H, W) float32 on
        ``styled``'s device."""
        if self.strength == 0:
            return styled
        inputs = frames.mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        outputs = styled.float().permute(0, 2, 3, 1).cpu().numpy()
        steady = np.stack([self(frame, out) for frame, out in zip(inputs, outputs)])
        return torch.from_numpy(steady).permute(0, 3, 1, 2).to(styled.device)
