"""The six photos the long runs never train on (conf/data/coco_heldout.yaml's ``val_files``, their one
home): their paths under the given folders, one a line, for the scripts that judge on them.

    python scripts/held_out_photos.py ../shared/assets/photos ../shared/assets/coco128   # paths
    python scripts/held_out_photos.py --hydra                                            # [a.jpg,b.jpg,...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "coco_heldout.yaml"


def held_out_names() -> list[str]:
    return list(yaml.safe_load(CONF.read_text())["val_files"])


def held_out_paths(roots: list[Path]) -> list[Path]:
    """Each held-out photo's path: the first file of that name under ``roots`` (searched recursively)."""
    found = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            found.setdefault(path.name, path)
    missing = [name for name in held_out_names() if name not in found]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} not found under {', '.join(map(str, roots))}")
    return [found[name] for name in held_out_names()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, help="folders holding the photos")
    parser.add_argument("--hydra", action="store_true", help="the names as one Hydra list, for data.val_files=")
    args = parser.parse_args()
    if args.hydra:
        print(f"[{','.join(held_out_names())}]")
    elif args.roots:
        print("\n".join(map(str, held_out_paths(args.roots))))
    else:
        sys.exit("error: give the folders to search, or --hydra")


if __name__ == "__main__":
    main()
