"""The fast-path switches take effect, and compute the losses of eager fp32 (timings stay out of tests)."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import train_config
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from fststyle.losses import PerceptualLoss
from fststyle.training.module import StyleTransferModule
from fststyle.net import TransformerNet
from fststyle.training.presets import apply_preset
from fststyle.vgg import LossNetwork

CONF = Path(__file__).resolve().parents[1] / "conf"


def make_module(**switches) -> StyleTransferModule:
    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1)
    network = LossNetwork("vgg19", ["relu1_2", "relu2_2", "relu3_3"], "bundled")
    criterion = PerceptualLoss(network, torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1)), ["relu2_2"], ["relu1_2", "relu3_3"])
    return StyleTransferModule(net, criterion, **switches)


def losses_of(module: StyleTransferModule, batch: torch.Tensor, autocast: bool = False) -> dict[str, float]:
    batch = module.prepare_batch(batch)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return {k: v.item() for k, v in module.criterion(module.net(batch), batch).items()}


@pytest.fixture(scope="module")
def batch():
    return torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(2))


def test_channels_last_reaches_the_convolutions(batch):
    """All weights are channels_last; so are the inputs of every convolution, the loss network's (most of
    the compute) and the transformer's (its instance norms keep the layout on the CPU)."""
    module = make_module(channels_last=True)
    seen: dict[str, bool] = {}
    names = {m: n for n, m in module.named_modules()}
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]

    def hook(conv: torch.nn.Module, args: tuple) -> None:  # returns None: the input is left as it is
        seen.setdefault(names[conv], args[0].is_contiguous(memory_format=torch.channels_last))

    handles = [c.register_forward_pre_hook(hook) for c in convs]
    losses_of(module, batch)
    for h in handles:
        h.remove()
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    vgg = [v for k, v in seen.items() if k.startswith("criterion.network.")]
    assert len(vgg) == 7 and len(seen) == len(convs) and all(seen.values())


def test_channels_last_and_bf16_give_the_eager_fp32_losses(batch):
    eager = losses_of(make_module(), batch)
    assert losses_of(make_module(channels_last=True), batch) == pytest.approx(eager, rel=1e-4)
    # bf16 keeps 8 bits of mantissa in the convolutions; Grams and losses are float32
    fast = losses_of(make_module(channels_last=True), batch, autocast=True)
    assert fast["content"] == pytest.approx(eager["content"], rel=0.03)
    assert fast["style"] == pytest.approx(eager["style"], rel=0.03)


def test_compile_is_applied_in_place_and_computes_the_same(batch):
    """Compiled in place (names kept), the same outputs, and every compiled training step is marked
    for CUDA graphs (torch.compiler.cudagraph_mark_step_begin moves this counter down by one)."""
    from torch._inductor.cudagraph_trees import MarkStepBox

    module = make_module(compile=True)
    assert module.net._compiled_call_impl is not None and module.criterion.network._compiled_call_impl is not None
    assert not any("_orig_mod" in k for k in module.state_dict())  # checkpoints and exports keep their names
    plain = make_module()
    with torch.no_grad():
        torch.testing.assert_close(module.net(batch), plain.net(batch), atol=1e-5, rtol=1e-4)
    module.is_logging_step = lambda: False  # no trainer here to log to
    plain.is_logging_step = lambda: False
    with torch.compiler.set_stance("force_eager"):  # the marks, without compiling the training graphs (a minute on 2 cores)
        for step_module, marks in ((module, 2), (plain, 0)):
            before = MarkStepBox.mark_step_counter
            for step in range(2):
                step_module.training_step(batch, step)
            assert before - MarkStepBox.mark_step_counter == marks


def test_adam_is_fused_only_on_cuda():
    module = make_module()
    module.trainer = type("T", (), {"world_size": 1})()  # only what configure_optimizers reads
    assert not module.configure_optimizers()["optimizer"].defaults["fused"]


def test_learning_rate_warms_up_then_follows_its_schedule():
    stub = type("T", (), {"max_steps": 110})()
    cosine, constant = (make_module(schedule=kind, warmup_steps=10, final_lr=0.1) for kind in ("cosine", "constant"))
    cosine.trainer = constant.trainer = stub
    assert [round(cosine.lr_factor(s), 6) for s in (0, 4, 9, 10, 60, 110)] == [0.1, 0.5, 1.0, 1.0, 0.55, 0.1]
    assert [constant.lr_factor(s) for s in (0, 9, 10, 110)] == [0.1, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="optim.schedule=linear"):
        make_module(schedule="linear")


@pytest.mark.parametrize("given", [set(), {"compile", "data.num_workers"}])
def test_gpu_preset_is_the_default_on_gpus(monkeypatch, given):
    """On a GPU every item of gpu_preset applies except the keys given on the command line; nothing
    of the CPU preset does."""
    import yaml

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    untouched = train_config()
    cfg = train_config()
    applied = apply_preset(cfg, given)
    expected = [item for item in cfg.gpu_preset if item.split("=")[0] not in given]
    assert applied == expected and len(expected) == len(cfg.gpu_preset) - len(given)
    for item in cfg.gpu_preset:
        key, value = item.split("=", 1)
        want = OmegaConf.select(untouched, key) if key in given else yaml.safe_load(value)
        assert OmegaConf.select(cfg, key) == want, key
    assert not any(OmegaConf.select(cfg, i.split("=")[0]) == yaml.safe_load(i.split("=")[1]) for i in cfg.cpu_preset
                   if i.split("=")[0] not in {k.split("=")[0] for k in cfg.gpu_preset})


SYNC_CALLS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__")


def test_training_steps_do_not_wait_for_the_device(tmp_path, monkeypatch, photos_dir, starry_night):
    """Reading a tensor's value on the host waits for a GPU. The whole training loop (step, logging,
    progress bar, callbacks) may do that only on logging steps, never on the others."""
    import traceback

    from omegaconf import open_dict

    from fststyle.train import train

    every, steps = 5, 14
    overrides = ["trainer=cpu", "logger=csv", "data=folder", f"data.root={photos_dir}", "data.image_size=32", "data.batch_size=2",
                 "data.num_workers=0", "data.sample_size=32", f"style.image={starry_night}", "style.name=x", "style.size=64",
                 f"trainer.max_steps={steps}", f"trainer.log_every_n_steps={every}", "sample_every=0", "checkpoint_every=1000",
                 f"hydra.run.dir={tmp_path}"]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        del cfg["hydra"]

    step, reads = {"now": -1}, []
    original_step = StyleTransferModule.training_step

    def training_step(self, batch, batch_idx):
        step["now"] = self.global_step
        return original_step(self, batch, batch_idx)

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            stack = traceback.extract_stack(limit=12)[:-1]
            # Host tensors by design, never on the GPU: the data pipeline's seeds and crop offsets, and
            # Adam's step counts (the fused CUDA Adam keeps them on the device and does not read them).
            host = any(f.filename.endswith(("fststyle/training/data.py", "data/dataloader.py", "optim/optimizer.py")) for f in stack)
            if step["now"] >= 0 and not host:
                reads.append((step["now"], name, [f"{Path(f.filename).name}:{f.lineno}" for f in stack[-5:]]))
            return original(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(StyleTransferModule, "training_step", training_step)
    for name in SYNC_CALLS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    train(cfg)
    monkeypatch.undo()

    read_steps = {s for s, *_ in reads}
    logging_steps = {s for s in range(steps) if (s + 1) % every == 0} | {steps - 1}
    assert read_steps - logging_steps == set(), sorted(r for r in reads if r[0] not in logging_steps)[:10]
    assert read_steps & logging_steps  # the counting itself works: logging does read the values


@pytest.mark.parametrize("native,given", [(True, set()), (False, set()), (True, {"trainer.precision"})])
def test_cpu_preset_uses_bf16_only_where_the_cpu_has_it(monkeypatch, native, given):
    import fststyle.training.presets

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(fststyle.training.presets, "native_bf16_cpu", lambda: native)
    cfg = train_config()
    applied = apply_preset(cfg, given)
    bf16 = native and not given
    assert ("trainer.precision=bf16-mixed" in applied) is bf16 and cfg.data.batch_size == 1  # the preset applied
    assert cfg.trainer.precision == ("bf16-mixed" if bf16 else "32-true")


@pytest.mark.parametrize("compile,cudagraphs", [("reduce-overhead", True), (True, False)])
def test_compile_takes_torch_compile_modes(compile, cudagraphs):
    """The mode reaches torch.compile: reduce-overhead turns on CUDA graphs in both compiled networks."""
    module = make_module(compile=compile)
    for network in (module.net, module.criterion.network):
        assert network._compiled_call_impl.get_compiler_config()["triton.cudagraphs"] is cudagraphs
    with pytest.raises(ValueError, match="compile=fast is not one of"):
        make_module(compile="fast")


def test_sample_grid_runs_the_network_uncompiled(tmp_path):
    """Under compile=true the sample photos (another size) must not go through the compiled call: it
    would compile again for their size."""
    from types import SimpleNamespace

    from PIL import Image

    from fststyle.training.callbacks import SampleGrid

    module = make_module(compile=True)

    def refuse(*args, **kwargs):
        raise AssertionError("the sample grid used the compiled call")

    module.net._compiled_call_impl = refuse
    grid = SampleGrid(torch.rand(2, 3, 24, 24), tmp_path, every=0)
    grid.write(SimpleNamespace(global_step=7, is_global_zero=True, loggers=[]), module)
    assert grid.written == [tmp_path / "step_000007.jpg"]
    assert Image.open(grid.written[0]).size == (2 * 24 + 3 * 4, 2 * 24 + 3 * 4)  # photos over stylized, 4 px padding


@pytest.mark.slow
def test_the_gpu_presets_switches_train_together(tmp_path, photos_dir, starry_night):
    """Every switch of gpu_preset at once (bf16, channels_last, compile, prepared photos built on the
    fly, workers), as far as a CPU can run them: training, sample grids, checkpoints, resume, export.
    The resume runs uncompiled (compiling again cost 6 s alone, about 10 s in the parallel suite):
    compile is in place, so the compiled run's checkpoint has the plain parameter names either run reads."""
    from conftest import photo_folder, run_cli

    root = photo_folder(tmp_path, photos_dir, count=6)
    args = ["trainer=cpu", "logger=none", "data=folder", f"data.root={root}", "data.image_size=32", "data.batch_size=2",
            "data.num_val=2", "data.sample_size=48", f"style.image={starry_night}", "style.name=x", "style.size=64",
            "trainer.precision=bf16-mixed", "channels_last=true", "compile=true", "data.prepared=build", "data.num_workers=1",
            "sample_every=2", "checkpoint_every=2", f"hydra.run.dir={tmp_path / 'run'}",
            "model.num_residual=1", "loss.style_layers=[relu1_2,relu2_2]"]  # shorter graphs to compile
    first = run_cli("fststyle.train", *args, "trainer.max_steps=4", timeout=600)
    assert "data.prepared=build: decoding the 4 training photos" in first.stdout + first.stderr
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_000002.jpg", "step_000004.jpg"]
    resume = ["compile=false" if a == "compile=true" else a for a in args]
    run_cli("fststyle.train", *resume, "trainer.max_steps=6", "ckpt_path=last", timeout=600)
    assert torch.load(tmp_path / "run" / "export" / "x.pth", weights_only=True)["metadata"]["steps"] == 6


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="fststyle.malloc tunes glibc's malloc only")
def test_freed_tensors_stay_with_the_process_for_reuse():
    """By default glibc unmaps a freed 128 MB tensor (the next one pays its page faults again);
    after reuse_freed_memory the memory stays free in the heap. A fresh process: the entry points
    that tests run in-process have turned it on in this one."""
    code = ("import torch\nfrom fststyle.malloc import held_free, reuse_freed_memory\n"
            "def freed():\n    x = torch.ones(2**25)\n    del x\n    return held_free()\n"
            "before = freed(); on = reuse_freed_memory(); print(before, on, freed())")
    before, on, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert on == "True"
    assert int(before) < 2**25 <= int(after)  # 2**25 floats: 128 MB


def test_the_entry_points_keep_freed_memory_and_the_budget_counts_it(monkeypatch):
    import fststyle.cli
    import fststyle.inference.memory
    calls = []
    monkeypatch.setattr(fststyle.cli, "reuse_freed_memory", lambda: calls.append(1))
    assert fststyle.cli.run_cli(lambda: 7) == 7 and calls == [1]
    held = 10**13  # more than any machine has, so only the held memory can explain the figure
    monkeypatch.setattr(fststyle.inference.memory, "held_free", lambda: held)
    assert fststyle.inference.memory.available_memory(torch.device("cpu")) >= held


def test_the_memory_budget_reads_the_system_on_every_platform(monkeypatch):
    """max_memory=auto from psutil's available memory (what macOS and Windows have: no /proc/meminfo,
    no SC_AVPHYS_PAGES, both simulated away here) plus malloc's held memory; half of it is the budget."""
    import builtins
    import collections
    import os

    import psutil

    import fststyle.inference.memory

    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (_ for _ in ()).throw(OSError("no /proc")) if str(f).startswith("/proc")
                        else real_open(f, *a, **k))
    monkeypatch.setattr(os, "sysconf", lambda name: (_ for _ in ()).throw(ValueError(name)))
    memory = collections.namedtuple("svmem", "total available")(16 * 2**30, 6 * 2**30)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)
    monkeypatch.setattr(fststyle.inference.memory, "held_free", lambda: 2**30)
    assert fststyle.inference.memory.memory_budget("auto", torch.device("cpu")) == (6 * 2**30 + 2**30) // 2
    monkeypatch.setattr(psutil, "virtual_memory", lambda: (_ for _ in ()).throw(RuntimeError("unsupported platform")))
    assert fststyle.inference.memory.memory_budget("auto", torch.device("cpu")) is None  # no figure: no budget, no crash


def test_the_cuda_budget_counts_the_allocators_cache(monkeypatch):
    """On a GPU, memory PyTorch holds reserved but unused is free for the next photo (simulated)."""
    import fststyle.inference.memory

    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 30 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * gib)
    assert fststyle.inference.memory.available_memory(torch.device("cuda")) == 29 * gib
    assert fststyle.inference.memory.memory_budget("auto", torch.device("cuda")) == int(29 * gib * 0.8)
