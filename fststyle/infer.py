"""``python -m fststyle.infer [model=PATH] input=PATH output=PATH``: stylize images, folders and videos
(without ``model=``: the packaged model, ``style=NAME``).

One photo with an ONNX model takes the quick path (fststyle.inference.quick: onnxruntime, no PyTorch, no Hydra,
a fraction of the start-up); everything else the full one (fststyle.inference.stylize_paths). Both give the same
picture. Nothing heavy is imported here before the choice is made."""

from __future__ import annotations

import sys


def cli() -> None:
    """``python -m fststyle.infer`` and the ``fststyle-infer`` command."""
    from fststyle.inference.quick import quick_run

    status = quick_run(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    from fststyle.cli import one_value
    from fststyle.inference.stylize_paths import main

    sys.argv = one_value(sys.argv, "style", "''")  # a blend, style=a:0.7,b:0.3, is one value
    main()


if __name__ == "__main__":
    cli()
