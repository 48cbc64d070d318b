"""Inference: the Stylizer and what it runs on (row bands, tiles, the memory plan), videos, their
stabilization and optical flow, the work of the ``infer`` command, and its path without PyTorch (quick)."""
