"""End-to-end: `python -m fststyle.train` on the shared photos and painting, tiny sizes, on the CPU."""

import http.server
import socket
import subprocess
import sys
import threading

import torch
from conftest import REPO, STEPS, read_metric, run_cli, tiny_args
from omegaconf import OmegaConf
from PIL import Image

from fststyle import Stylizer
from fststyle.training.presets import apply_items, fits_packaged
from fststyle.styles import sha256_of

def test_training_lowers_the_loss(trained):
    run_dir, proc = trained
    # No Lightning warning a user would read as a defect (the batch hook lives on the DataModule).
    assert "on_after_batch_transfer" not in proc.stdout + proc.stderr
    loss, style = read_metric(run_dir, "train/loss"), read_metric(run_dir, "train/style")
    assert len(loss) == STEPS
    assert sum(loss[-5:]) / 5 < 0.6 * sum(loss[:5]) / 5
    assert sum(style[-5:]) / 5 < 0.6 * sum(style[:5]) / 5
    for name in ("train/content", "train/tv", "train/style/relu4_3", "train/images_per_sec"):
        assert read_metric(run_dir, name), name


def test_run_folder_has_samples_checkpoints_and_export(trained):
    run_dir, proc = trained
    samples = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert samples == ["step_000010.jpg", "step_000020.jpg", "step_000030.jpg"]
    with Image.open(run_dir / "samples" / "step_000030.jpg") as grid:
        # 4 held-out photos in a row, photos over stylized: 4 px padding around 48 px tiles
        assert grid.size == (4 + 4 * (48 + 4), 4 + 2 * (48 + 4))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == STEPS
    assert not any(k.startswith("criterion.network.") for k in ckpt["state_dict"])  # no frozen VGG copies
    assert ckpt["hyper_parameters"]["config"]["style"]["name"] == "starry_night"
    exported = run_dir / "export" / "starry_night.pth"
    assert proc.stdout.strip().splitlines()[-1] == f"exported: {exported.resolve()}"


def test_export_loads_safely_and_stylizes_any_size(trained, photos_dir, starry_night):
    run_dir, _ = trained
    payload = torch.load(run_dir / "export" / "starry_night.pth", weights_only=True)
    meta = payload["metadata"]
    assert payload["format"] == "fststyle" and payload["model"] == {"width": 32, "num_residual": 5, "norm": "instance", "upsample": "nearest"}
    assert meta["style_name"] == "starry_night" and meta["steps"] == STEPS
    assert meta["style_sha256"] == "0592ab0f7b51b3ce72608a95e53880bd93971e5b48f93a0ce8dfd3cbccf3d098"
    assert meta["loss"]["style_layers"] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    stylizer = Stylizer.load(run_dir / "export" / "starry_night.pth", device="cpu")
    photo = Image.open(photos_dir / "dog.jpg").convert("RGB").resize((37, 23))
    out = stylizer(photo)
    assert isinstance(out, Image.Image) and out.size == (37, 23)


def test_infer_cli_writes_an_image_of_the_input_size(trained, photos_dir, tmp_path):
    run_dir, _ = trained
    out = tmp_path / "nested" / "dog_styled.png"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    proc = run_cli("fststyle.infer", f"model={run_dir / 'export' / 'starry_night.pth'}", f"input={photos_dir / 'dog.jpg'}",
                   f"output={out}", "size=61", "device=cpu", cwd=workdir)
    with Image.open(photos_dir / "dog.jpg") as src, Image.open(out) as res:
        expected = (61, round(src.height * 61 / src.width)) if src.width >= src.height else (round(src.width * 61 / src.height), 61)
        assert res.size == expected and res.mode == "RGB"
    assert "wrote:" in proc.stdout
    assert list(workdir.iterdir()) == []  # no Hydra run folder or log for inference


def test_resume_continues_from_a_checkpoint(trained, tmp_path, photos_dir, starry_night):
    run_dir, _ = trained
    resumed = tmp_path / "resumed"
    run_cli("fststyle.train", *tiny_args(resumed, photos_dir, starry_night, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                                          f"trainer.max_steps={STEPS + 4}", "sample_every=0"))
    meta = torch.load(resumed / "export" / "starry_night.pth", weights_only=True)["metadata"]
    assert meta["steps"] == STEPS + 4
    assert len(read_metric(resumed, "train/loss")) == 4
    # The training record counts across the resume: images of both runs (batches of 2), hours of both.
    from fststyle.model_file import load_network, training_record

    before = training_record(run_dir / "checkpoints" / "last.ckpt")
    assert load_network(run_dir / "checkpoints" / "last.ckpt")[1]["training"] == before  # a checkpoint as a teacher records it
    first = torch.load(run_dir / "export" / "starry_night.pth", weights_only=True)["metadata"]["training"]
    assert before["steps"] == STEPS and before["images"] == first["images"] == 2 * STEPS and before["hours"] > 0
    assert meta["training"]["images"] == 2 * (STEPS + 4) and meta["training"]["steps"] == STEPS + 4
    assert before["hours"] < meta["training"]["hours"] < before["hours"] + 0.1  # the resumed minutes added, not a fresh clock
    assert read_metric(resumed, "train/images_seen")[-1] == 2 * (STEPS + 4)


def test_cpu_preset_applies_except_to_keys_given(tmp_path, photos_dir, starry_night):
    """trainer=debug is not a preset trainer; trainer=cpu is: its preset keys apply unless given."""
    run_dir = tmp_path / "preset"
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night) if not a.startswith(("sample_every", "checkpoint_every", "trainer.max_steps"))]
    proc = run_cli("fststyle.train", *args, "trainer.max_steps=2")
    announced = next(line for line in (proc.stdout + proc.stderr).splitlines() if "CPU preset" in line)
    assert "sample_every=200" in announced and "checkpoint_every=400" in announced and "channels_last=true" in announced
    assert "trainer.max_steps" not in announced and "data.image_size" not in announced and "init=" not in announced
    assert torch.load(run_dir / "export" / "starry_night.pth", weights_only=True)["metadata"]["steps"] == 2


def test_cpu_preset_starts_the_packaged_models_network_from_it(tmp_path, photos_dir, starry_night):
    """The default network on the CPU starts from the packaged model (init=packaged, announced and
    recorded); another architecture, train=norms or init given by hand (the test above) are left alone."""
    run_dir = tmp_path / "preset"
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=2", "sample_every=0") if not a.startswith("init=")]
    proc = run_cli("fststyle.train", *args)
    announced = next(line for line in (proc.stdout + proc.stderr).splitlines() if "CPU preset" in line)
    assert "init=packaged" in announced
    assert "init=packaged: loss.temporal_weight=2e6 loss.temporal_motion=grid" in proc.stdout + proc.stderr
    meta = torch.load(run_dir / "export" / "starry_night.pth", weights_only=True)["metadata"]
    assert meta["init"] == "packaged" and (meta["loss"]["temporal_weight"], meta["loss"]["temporal_motion"]) == (2e6, "grid")
    cfg = OmegaConf.create({"train": "all", "model": {"width": 32, "num_residual": 5, "norm": "instance", "upsample": "nearest"}})
    assert fits_packaged(cfg)
    assert not fits_packaged(OmegaConf.merge(cfg, {"model": {"width": 16}}))
    assert not fits_packaged(OmegaConf.merge(cfg, {"model": {"upsample": "transpose"}}))
    assert not fits_packaged(OmegaConf.merge(cfg, {"train": "norms"}))


def test_the_packaged_preset_lets_a_given_weight_or_motion_win():
    """loss.temporal_weight=W tunes the packaged model's grid term (its motion stays grid), 0 turns it off, and
    another motion (video stability) keeps the term's weight."""
    preset = OmegaConf.load(REPO / "conf" / "train.yaml").packaged_preset
    for given, value, expected in [("loss.temporal_weight", 1e7, (1e7, "grid")), ("loss.temporal_weight", 0.0, (0.0, "grid")),
                                   ("loss.temporal_motion", "affine", (2e6, "affine"))]:
        cfg = OmegaConf.create({"loss": {"temporal_weight": 0.0, "temporal_motion": "affine"}})
        OmegaConf.update(cfg, given, value)
        apply_items(cfg, preset, {given})
        assert (cfg.loss.temporal_weight, cfg.loss.temporal_motion) == expected


def test_a_packaged_painting_trains_with_no_network_and_no_file_placed(tmp_path, photos_dir, starry_night):
    """style=great_wave on a machine without internet (every http(s) request goes to a closed local
    port), with an empty style cache: the painting comes from the package."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    run_dir, cache = tmp_path / "run", tmp_path / "styles"
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=2", "sample_every=0")
            if not a.startswith(("style.image", "style.name"))]
    run_cli("fststyle.train", *args, "style=great_wave", f"style_cache={cache}",
            env={"http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead})
    meta = torch.load(run_dir / "export" / "great_wave.pth", weights_only=True)["metadata"]
    assert meta["style_name"] == "great_wave" and meta["style_sha256"] == sha256_of(REPO / "fststyle" / "paintings" / "great_wave.jpg")
    assert not cache.exists()


def test_style_image_needs_a_name(tmp_path, starry_night):
    proc = subprocess.run([sys.executable, "-m", "fststyle.train", f"style.image={starry_night}", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "style.name=NAME" in proc.stderr


def test_wandb_logger_runs_offline_without_an_account(tmp_path, photos_dir, starry_night):
    run_dir = tmp_path / "wandb_run"
    env = {"HOME": str(tmp_path), "WANDB_MODE": "", "WANDB_API_KEY": "", "WANDB_SILENT": "true"}
    args = [a.replace("logger=csv", "logger=wandb") for a in tiny_args(run_dir, photos_dir, starry_night)]
    run_cli("fststyle.train", *args, "trainer.max_steps=3", "sample_every=2", env=env, timeout=240)
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("files/media/images/samples_*.png")), "the sample grid was not logged"


class SilentHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path.startswith("/sdk/otel/"):
            self.send_error(404)
        else:
            self.server.released.wait(300)

    def log_message(self, *args) -> None:
        pass


class SilentServer(http.server.ThreadingHTTPServer):
    """A W&B server that takes the connection and never answers the run's requests. It does answer
    the SDK's own analytics probe (404: not supported), which wandb otherwise waits for at exit, for
    about 20 s, after the run is exported."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SilentHandler)
        self.released = threading.Event()

    def __enter__(self) -> "SilentServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


def test_an_unreachable_wandb_server_turns_the_run_offline(tmp_path, photos_dir, starry_night, monkeypatch):
    """An API key but no answer from the server (a cluster node without internet): after
    logger.init_timeout the run goes on offline, with one warning, and is exported."""
    monkeypatch.delenv("WANDB_MODE")  # as a user has it: not set
    with SilentServer() as silent:
        run_dir = tmp_path / "run"
        env = {"HOME": str(tmp_path), "WANDB_API_KEY": "x" * 40, "WANDB_SILENT": "true",
               "WANDB_BASE_URL": f"http://127.0.0.1:{silent.server_address[1]}"}
        args = [a.replace("logger=csv", "logger=wandb") for a in tiny_args(run_dir, photos_dir, starry_night)]
        proc = run_cli("fststyle.train", *args, "trainer.max_steps=2", "sample_every=0", "logger.init_timeout=2", env=env, timeout=240)
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "did not take the run" in line]
    assert len(warnings) == 1 and "logging offline under" in warnings[0] and "wandb sync" in warnings[0]
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert proc.stdout.strip().splitlines()[-1] == f"exported: {(run_dir / 'export' / 'starry_night.pth').resolve()}"


def test_checkpoints_every_n_steps_keep_the_newest(trained, tmp_path, photos_dir, starry_night):
    run_dir, _ = trained  # 30 steps, a checkpoint every 10, checkpoint_keep's default
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt", "step=10.ckpt", "step=20.ckpt", "step=30.ckpt"]
    kept = tmp_path / "kept"
    run_cli("fststyle.train", *tiny_args(kept, photos_dir, starry_night, "trainer.max_steps=8", "checkpoint_every=2", "checkpoint_keep=2",
                                         "sample_every=0"))
    assert sorted(p.name for p in (kept / "checkpoints").iterdir()) == ["last.ckpt", "step=6.ckpt", "step=8.ckpt"]
    assert torch.load(kept / "checkpoints" / "step=6.ckpt", weights_only=True)["global_step"] == 6


def test_resuming_with_another_style_or_loss_is_refused(trained, tmp_path, photos_dir, starry_night):
    run_dir, _ = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    other = tmp_path / "other.jpg"
    other.write_bytes((photos_dir / "dog.jpg").read_bytes())
    args = [a for a in tiny_args(tmp_path / "run", photos_dir, starry_night, f"ckpt_path={ckpt}") if not a.startswith("style.")]
    proc = run_cli("fststyle.train", *args, f"style.image={other}", "style.name=dog", "style.size=128", "loss.style_weight=2", expect=2)
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: ckpt_path={ckpt} was trained with another setup (") and error.endswith("or start a new run")
    differences = error.split("another setup (")[1].split("): resume")[0].split("; ")
    assert sorted(differences) == sorted([f"style.image: {starry_night} -> {other}", "style.name: starry_night -> dog",
                                          "loss.style_weight: 1.0 -> 2"])  # style.size is the same: not named
    assert not (tmp_path / "run" / "export").exists()


def test_a_many_style_run_resumes_only_with_the_paintings_weights_it_trained_with():
    """A run of several styles takes each painting's weight from conf/style/NAME.yaml: a checkpoint
    trained when Udnie's weight was 1 is not resumed at its weight of 6 without a word."""
    from omegaconf import OmegaConf

    from fststyle.training.checkpoint_io import painting_differences
    from fststyle.styles import style_entries

    cfg = OmegaConf.create({"styles": ["udnie", "starry_night"], "style": {"size": 256, "weight": 1.0}})
    now = [{"name": e.name, "size": e.size, "weight": float(e.get("weight", 1.0))} for e in style_entries(cfg)]
    assert painting_differences(now, cfg) == []
    before = [{**now[0], "weight": 1.0}, {k: v for k, v in now[1].items() if k != "weight"}]  # older: no weight is 1
    assert painting_differences(before, cfg) == [f"styles.udnie.weight: 1.0 -> {now[0]['weight']}"] and now[0]["weight"] != 1.0
    before[1]["size"] = 128
    assert painting_differences(before, cfg)[1] == f"styles.starry_night.size: 128 -> {now[1]['size']}"
    assert painting_differences(before, OmegaConf.create({"styles": None, "style": {}})) == []  # one style: its own keys


def test_a_checkpoint_older_than_a_loss_key_resumes_when_the_key_keeps_its_meaning():
    """A checkpoint written before loss.temporal_target existed meant `steady`: resuming it with the
    default is no difference; asking for `difference` is one."""
    from fststyle.training.checkpoint_io import config_differences

    saved = {"loss": {"style_weight": 1.0, "temporal_weight": 0.0}}
    current = {"loss": {"style_weight": 1.0, "temporal_weight": 0.0, "temporal_target": "steady"}}
    assert config_differences(saved, current, ("loss",)) == []
    current["loss"]["temporal_target"] = "difference"
    assert config_differences(saved, current, ("loss",)) == ["loss.temporal_target: steady -> difference"]
    # a single dotted key the old config lacks, inside a section it has (style.weight)
    saved, current = {"style": {"name": "udnie"}}, {"style": {"name": "udnie", "weight": 1.0}}
    assert config_differences(saved, current, ("style.name", "style.weight")) == []
    current["style"]["weight"] = 6.0
    assert config_differences(saved, current, ("style.weight",)) == ["style.weight: 1.0 -> 6.0"]


def test_a_new_run_in_an_old_run_folder_starts_from_scratch(tmp_path, photos_dir, starry_night):
    """Only ckpt_path= resumes: without it, a run folder that holds a last.ckpt is trained anew."""
    run_dir = tmp_path / "run"
    args = tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=2", "checkpoint_every=1", "sample_every=0")
    run_cli("fststyle.train", *args)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    proc = run_cli("fststyle.train", *args)
    assert len(read_metric(run_dir, "train/loss")) == 2 and "resuming" not in proc.stdout + proc.stderr


def test_init_warm_starts_from_an_exported_model_or_a_checkpoint(trained, tmp_path, photos_dir, starry_night):
    """init= loads the network's weights (fresh optimizer and steps): after one Adam step of lr 1e-3
    every weight is within 1e-3 of the model it started from, far from a fresh network."""
    run_dir, _ = trained
    source = torch.load(run_dir / "export" / "starry_night.pth", weights_only=True)["state_dict"]
    for init in (run_dir / "export" / "starry_night.pth", run_dir / "checkpoints" / "last.ckpt"):
        warm = tmp_path / init.suffix[1:]
        run_cli("fststyle.train", *tiny_args(warm, photos_dir, starry_night, f"init={init}", "trainer.max_steps=1", "sample_every=0"))
        exported = torch.load(warm / "export" / "starry_night.pth", weights_only=True)
        assert exported["metadata"]["steps"] == 1 and exported["metadata"]["init"] == str(init)
        assert max((exported["state_dict"][k] - v).abs().max().item() for k, v in source.items()) <= 1.01e-3
    from fststyle.net import TransformerNet

    fresh = TransformerNet().state_dict()  # what training starts from without init=
    assert max((fresh[k] - v).abs().max().item() for k, v in source.items()) > 0.01


def test_init_refuses_another_architecture(trained, tmp_path, photos_dir, starry_night):
    model = trained[0] / "export" / "starry_night.pth"
    proc = run_cli("fststyle.train", *tiny_args(tmp_path / "a", photos_dir, starry_night, f"init={model}", "model.width=16"), expect=2)
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: init={model} is a network of another architecture (")


def test_a_norms_only_job_restarted_with_ckpt_path_last_continues(trained, tmp_path, photos_dir, starry_night):
    """scripts/slurm_train.sh always passes ckpt_path=last: a train=norms (init=) job starts from init=
    when its run folder holds no checkpoint, and a restarted one continues from its checkpoint (init=
    only shapes the network). Resuming with another list of styles is refused in one line."""
    model = trained[0] / "export" / "starry_night.pth"
    run_dir = tmp_path / "norms"
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=2", "checkpoint_every=2", "sample_every=0")
            if not a.startswith("style.")]
    job = [f"init={model}", "styles=[great_wave]", "style.name=two", "train=norms", "ckpt_path=last"]
    run_cli("fststyle.train", *args, *job)
    first = torch.load(run_dir / "export" / "two.pth", weights_only=True)
    assert first["metadata"]["steps"] == 2 and [s["name"] for s in first["metadata"]["styles"]] == ["starry_night", "great_wave"]
    proc = run_cli("fststyle.train", *[a.replace("trainer.max_steps=2", "trainer.max_steps=4") for a in args], *job)
    assert "resuming from" in proc.stdout + proc.stderr
    second = torch.load(run_dir / "export" / "two.pth", weights_only=True)
    assert second["metadata"]["steps"] == 4
    old = torch.load(model, weights_only=True)["state_dict"]
    norms = [k for k, v in second["state_dict"].items() if v.dim() == 2 and k.endswith((".weight", ".bias")) and v.shape[0] == 2]
    assert norms and all(torch.equal(second["state_dict"][k][0], old[k]) for k in norms)  # the old style never moved
    assert any(not torch.equal(second["state_dict"][k][1], first["state_dict"][k][1]) for k in norms)  # the new one trained on
    other = [a.replace("styles=[great_wave]", "styles=[the_scream]") for a in job]
    proc = run_cli("fststyle.train", *[a.replace("trainer.max_steps=2", "trainer.max_steps=6") for a in args], *other, expect=2)
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ckpt_path=") and "styles: ['great_wave'] -> ['the_scream']" in error


def test_a_one_item_style_list_records_its_own_painting(tmp_path, photos_dir, starry_night):
    """styles=[great_wave]: the model records Great Wave's image, sha256 and size, not the default
    style group's (Starry Night's) beside them."""
    import yaml

    run_dir = tmp_path / "run"
    args = [a for a in tiny_args(run_dir, photos_dir, starry_night, "trainer.max_steps=1", "sample_every=0") if not a.startswith("style.")]
    run_cli("fststyle.train", *args, "styles=[great_wave]", "style.name=wave")
    meta = torch.load(run_dir / "export" / "wave.pth", weights_only=True)["metadata"]
    config = yaml.safe_load((REPO / "conf" / "style" / "great_wave.yaml").read_text())
    assert (meta["style_image"], meta["style_size"]) == (config["image"], config["size"]) == ("packaged:great_wave.jpg", config["size"])
    assert meta["style_sha256"] == sha256_of(REPO / "fststyle" / "paintings" / "great_wave.jpg")
