"""Judging models: quality against the optimization of their own objective (with that optimization), the
evaluation metrics, and the flicker of videos."""
