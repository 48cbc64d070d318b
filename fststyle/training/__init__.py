"""Training: the Lightning module and its callbacks, the loss built from a config (criterion), the presets
that adapt a run to its machine, network surgery, checkpoints, the data module and its prepared file, the
dashboard, and the temporal term. Used by the ``train`` command."""
