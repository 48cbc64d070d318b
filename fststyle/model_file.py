"""The exported model format (``export/<style>.pth``) and its loading, with no dependency on the
training or command-line stack: an application that only stylizes imports torch, the network and this.

The format: a plain ``torch.save`` dict, loadable with ``torch.load(path, weights_only=True)``::

    {"format": "fststyle", "format_version": 1,
     "model": {"width": 32, "num_residual": 5, "norm": "instance", "upsample": "nearest"},
     "state_dict": {...},            # TransformerNet's parameters and buffers
     "metadata": {"style_name", "style_sha256", "loss", "steps", "fststyle_version", ...}}

Floating-point tensors may be stored as float16 (``save_model(..., half=True)``; the metadata then says
``"weights": "float16"``): half the file, read back as float32.

``packaged`` names the model of the six packaged paintings that ships inside the package
(``fststyle/models/packaged.pth``), ``packaged-small`` the same paintings in a small network
(``packaged_small.pth``): every loader here takes these names where it takes a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fststyle import PACKAGED_MODEL_NAME, packaged_model_file
from fststyle.files import atomic_write
from fststyle.net import TransformerNet

FORMAT = "fststyle"
FORMAT_VERSION = 1
PACKAGED_MODEL = packaged_model_file(PACKAGED_MODEL_NAME)


def model_path(model: str | Path) -> Path:
    """The file ``model`` names: ``packaged`` and ``packaged-small`` are models that ship with fststyle,
    anything else a path."""
    return packaged_model_file(str(model)) or Path(model).expanduser()


def save_model(path: str | Path, net: TransformerNet, model_config: dict[str, Any], metadata: dict[str, Any],
               half: bool = False) -> Path:
    """Write the exported model atomically (temporary file, flushed to the disk, renamed): a crash
    leaves no half file. ``half``: floating-point tensors stored as float16."""
    path = Path(path)
    stored = torch.float16 if half else torch.float32
    state = {k: v.detach().cpu().to(stored if v.is_floating_point() else v.dtype).contiguous().clone()
             for k, v in net.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": dict(model_config),
        "state_dict": state,
        "metadata": {**metadata, "weights": "float16"} if half else dict(metadata),
    }
    with atomic_write(path, sync=True) as tmp:
        torch.save(payload, tmp)
    return path.resolve()


# What a model file may ask for, checked before anything is allocated: far beyond any network that makes
# sense (the default is width 32, 5 blocks; 6 styles ship), far below what would exhaust a machine.
ARCHITECTURE_BOUNDS = {"width": (1, 512), "num_residual": (0, 64), "num_styles": (1, 4096)}


def network_from(config: Any, state: Any, path: Path) -> TransformerNet:
    """The network a file describes (``config``: its ``model`` entry) with its weights (``state``), each
    checked first, so that a malformed or crafted file gets one line instead of a traceback: the keys
    and sizes are bounded (ARCHITECTURE_BOUNDS), then the network is laid out on the meta device (no
    memory) and every tensor's name and shape compared with the file's before the real one is built.
    So a file cannot ask for more memory than its own tensors take."""
    import inspect

    def bad(why: str) -> ValueError:
        return ValueError(f"{path} is not a usable fststyle model: {why}; re-export it")

    if not isinstance(config, dict):
        raise bad("no network description (its 'model' entry)")
    known = set(inspect.signature(TransformerNet).parameters)
    unknown = sorted(map(str, set(config) - known))
    if unknown:
        raise bad(f"unknown network keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key, (low, high) in ARCHITECTURE_BOUNDS.items():
        value = config.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad(f"{key}={value!r} is not a whole number in [{low}, {high}]")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise bad("its weights ('state_dict') are missing or not tensors")
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in TransformerNet(**config).state_dict().items()}
    except ValueError as err:  # e.g. an unknown norm or upsampling
        raise bad(str(err)) from err
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or extra or wrong:
        first = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra
                 else f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, the network needs {expected[wrong[0]]}")
        raise bad(f"its weights do not fit the network it describes ({len(missing)} missing, {len(extra)} unexpected, "
                  f"{len(wrong)} of another shape; {first})")
    net = TransformerNet(**config)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return net


def check_metadata(metadata: Any, path: Path) -> dict[str, Any]:
    """The metadata of a model file, checked where the commands read it: a dict; style names as text;
    ``styles`` a list of entries with a name."""
    why = None
    if not isinstance(metadata, dict):
        why = f"its metadata is a {type(metadata).__name__}, not a dict"
    elif "style_name" in metadata and not isinstance(metadata["style_name"], str):
        why = "its style_name is not text"
    elif "styles" in metadata and not (isinstance(metadata["styles"], list) and metadata["styles"]
                                       and all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in metadata["styles"])):
        why = "its styles entry is not a list of styles with names"
    if why:
        raise ValueError(f"{path} is not a usable fststyle model: {why}; re-export it")
    return metadata


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[TransformerNet, dict[str, Any]]:
    """Load an exported model (safely: no pickled code runs). Returns the network in eval mode and
    the metadata."""
    path = model_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path.resolve()}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable fststyle model ({type(err).__name__}); re-export it") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an exported fststyle model (expected a .pth written by fststyle.train)")
    version = payload.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path} is not a usable fststyle model: its format_version {version!r} is not a whole number; re-export it")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer fststyle (format {version}); upgrade fststyle")
    metadata = check_metadata(payload.get("metadata", {}), path)
    return network_from(payload.get("model"), payload.get("state_dict"), path).eval(), metadata


def _mapped(path: str | Path) -> dict[str, Any]:
    """A model or checkpoint file's saved dict with its tensors mapped, not read: for its small entries."""
    return torch.load(model_path(path), map_location="cpu", weights_only=True, mmap=True)


def model_architecture(path: str | Path) -> dict[str, Any]:
    """The network's configuration (``model``: width, num_residual, ..., num_styles) of an exported model
    or ``packaged``, without reading its weights (the file is mapped, not loaded)."""
    return dict(_mapped(path)["model"])


def model_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported model or ``packaged`` (its styles, objective, training), without
    reading its weights (the file is mapped, not loaded)."""
    return dict(_mapped(path).get("metadata", {}))


def training_record(path: str | Path) -> dict[str, Any] | None:
    """How much the model in ``path`` (an exported model, ``packaged`` or a training checkpoint) was
    trained: its metadata's ``training`` (steps, images, hours, ...), or a checkpoint's step, images and
    hours; None when the file does not say. Mapped, not read whole."""
    saved = _mapped(path)
    if "metadata" in saved:
        return saved["metadata"].get("training")
    return checkpoint_training(saved)


def checkpoint_training(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """A training checkpoint's step, images and hours (its TrainingRecord's state), or None."""
    state = next((v for k, v in ckpt.get("callbacks", {}).items() if k.startswith("TrainingRecord")), None)
    if state is None:
        return None
    return {"steps": int(ckpt["global_step"]), "images": int(state["images"]), "hours": round(float(state["seconds"]) / 3600, 4)}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[TransformerNet, dict[str, Any]]:
    """The transformer network of a training checkpoint (``checkpoints/*.ckpt`` of a run folder)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path.resolve()}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        config = ckpt["hyper_parameters"]["config"]
        state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    except Exception as err:
        raise ValueError(f"{path} is not a readable fststyle training checkpoint ({type(err).__name__})") from err
    held = ckpt["hyper_parameters"].get("held_styles") or []
    model = config.get("model")
    model = {**{k: v for k, v in model.items() if k != "_target_"}, "num_styles": max(1, len(held))} if isinstance(model, dict) else model
    net = network_from(model, state, path)
    style = config["style"]
    metadata = {**style_metadata(style["name"], held or [{"name": style["name"], "image": style["image"], "size": style.get("size"), "sha256": None,
                                                             "weight": style.get("weight", 1.0)}]),
                "steps": ckpt.get("global_step"), "loss": config.get("loss"), "training": checkpoint_training(ckpt)}
    return net.eval(), metadata


def style_metadata(name: str, held: list[dict[str, Any]]) -> dict[str, Any]:
    """The style keys of the metadata of model ``name`` for the styles it holds (name, image, sha256,
    size and the painting's own weight each): the painting, its sha256, size and weight of the (first)
    style, and for several styles the whole list under ``styles``."""
    first = held[0]
    metadata = {"style_name": name, "style_image": first["image"], "style_sha256": first.get("sha256"), "style_size": first.get("size"),
                "style_weight": first.get("weight", 1.0)}
    if len(held) > 1:
        metadata["styles"] = [dict(entry) for entry in held]
    return metadata


def load_network(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[TransformerNet, dict[str, Any]]:
    """An exported ``.pth`` (or ``packaged``) or a training ``.ckpt``, as a network in eval mode plus metadata."""
    if Path(path).suffix.lower() == ".ckpt":
        return load_checkpoint(path, map_location)
    return load_model(path, map_location)
