"""The training loop end to end on tiny data: run folder, metrics, eval, NaN stop, SIGTERM,
and exact resume after a real SIGKILL (bit-identical weights)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from effnet.cli import main as cli_main
from effnet.data.fashion_mnist import FILES
from effnet.train.checkpoint import load_checkpoint
from effnet.train.config_files import load_config
from effnet.train.loop import NonFiniteLossError, train
from effnet.train.metrics import MetricsWriter
from effnet.weights import RunFolder, read_weights

REPO = Path(__file__).resolve().parent.parent
SIZE = 12
MINIVAL = 16  # held out of the fake training set to select the best epoch (96 images stay: 6 steps of 16)


def write_fake_fashion_mnist(root: Path, n_train: int = 96 + MINIVAL, n_test: int = 48, size: int = SIZE) -> Path:
    """Learnable fake data: each class is a bright square at its own place, plus noise."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
        for i, label in enumerate(labels):
            y, x = divmod(int(label), 4)
            images[i, 3 * y:3 * y + 3, 3 * x:3 * x + 3] = 250
        for array, name in zip((images, labels), FILES[split]):
            header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
            with gzip.open(root / name, "wb") as f:
                f.write(header + array.tobytes())
    return root


def tiny_overrides(data_root: Path, out_dir: Path, name: str, epochs: int = 4) -> list[str]:
    return [
        f"data.root={data_root}", f"data.image_size={SIZE}", f"data.minival={MINIVAL}", "data.crop=pad_crop",
        "data.padding=2",
        "data.batch_augment=true", "model.name=fmnist_s0", "model.width=0.25", "model.depth=0.5",
        "train.batch_size=16", "train.eval_batch_size=64", f"train.epochs={epochs}", "schedule.warmup_epochs=1",
        "train.threads=1", "train.deterministic=true", f"run.out_dir={out_dir}", f"run.name={name}",
        "run.progress=false", "run.tensorboard=false",
    ]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture()
def restore_torch_globals():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def reference_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run, in this process, for the resume tests to match."""
    out = tmp_path_factory.mktemp("runs")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        result = train(load_config(None, tiny_overrides(data_root, out, "reference", epochs=6)))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert result.status == "finished" and result.epoch == 6
    return result.run_dir


def effnet(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen([sys.executable, "-m", "effnet", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {path} appeared:\n{proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def assert_same_weights(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert (ca["epoch"], ca["global_step"]) == (cb["epoch"], cb["global_step"])
    for part in ("model", "ema"):
        assert ca[part].keys() == cb[part].keys()
        for key in ca[part]:
            assert torch.equal(ca[part][key], cb[part][key]), f"{part}.{key} differs"


def test_run_folder_metrics_checkpoints_and_eval(data_root: Path, tmp_path: Path, restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    overrides = tiny_overrides(data_root, tmp_path, "run", epochs=3)
    overrides[overrides.index("run.tensorboard=false")] = "run.tensorboard=true"
    result = train(load_config(None, overrides + ["optim.lr=0.05"]))
    run = tmp_path / "run"
    assert result.status == "finished" and result.run_dir == run and result.global_step == 3 * 6
    assert {"config.yaml", "metrics.jsonl", "metrics.csv", "last.pt", "model.safetensors"} <= {p.name for p in run.iterdir()}
    assert load_config(run / "config.yaml") == load_config(None, overrides + ["optim.lr=0.05"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert {"train_loss", "train_acc", "val_top1", "val_top5", "ema_val_top1", "lr", "images_per_s"} <= set(records[0])
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,step,lr,train_loss") and len(csv_lines) == 4
    if MetricsWriter(RunFolder(tmp_path / "probe")).tensorboard_enabled:
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 3 and ckpt["batches_done"] == 0 and ckpt["global_step"] == 18
    assert {"model", "optimizer", "scheduler", "ema", "rng", "config", "spec", "classes"} <= set(ckpt)
    assert records[-1]["train_loss"] < records[0]["train_loss"]  # it learns

    # The trained model: the best minival epoch's EMA weights, with where they came from; the
    # test set evaluated once, on that model, at the end.
    _, meta = read_weights(run / "model.safetensors")
    best = max(records, key=lambda r: r["ema_val_top1"])
    assert meta.provenance["epochs"] == best["epoch"] and meta.provenance["val_top1"] == best["ema_val_top1"]
    assert meta.provenance["weights"] == "EMA" and meta.provenance["selected_on"] == "minival"
    assert meta.provenance["minival_images"] == MINIVAL and meta.spec.name == "fmnist_s0_w0.25_d0.5"
    assert meta.provenance["test_top1"] == pytest.approx(result.test["top1"])
    assert all("test_top1" not in r for r in records)  # model selection never saw the test set

    out = tmp_path / "eval"
    assert cli_main(["eval", str(run), "--out", str(out), "--json"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["images"] == 48 and len(report["per_class"]) == 10 and report["weights"] == "EMA"
    assert report["top1"] == pytest.approx(result.test["top1"])  # the same model on the same test set
    assert 0 <= report["top1"] <= report["top5"] <= 100
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    class PoisonedLoss(torch.nn.CrossEntropyLoss):
        def forward(self, logits, labels):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            loss = super().forward(logits, labels)
            # Calls 1-6: epoch 1 (6 steps); 7-8: its two evaluations (model, EMA); 9: step 7.
            return loss * float("nan") if calls["n"] >= 9 else loss

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", PoisonedLoss)
    config = load_config(None, tiny_overrides(data_root, tmp_path, "nan", epochs=3))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2, step 7.*last good state"):
        train(config)
    good = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert (good["epoch"], good["global_step"]) == (1, 6)
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    assert len((tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()) == 1


def test_sigkill_then_resume_is_bit_identical(data_root: Path, tmp_path: Path, reference_run: Path) -> None:
    proc = effnet("train", *tiny_overrides(data_root, tmp_path, "killed", epochs=6))
    wait_for(tmp_path / "killed" / "last.pt", proc)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"]
    assert 1 <= stopped_at < 6
    resumed = effnet("train", "--resume", str(tmp_path / "killed"))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resuming {tmp_path / 'killed'} at epoch {stopped_at + 1}" in err.replace("\n", " ")
    assert_same_weights(tmp_path / "killed" / "last.pt", reference_run / "last.pt")


def test_sigterm_saves_mid_epoch_and_resumes_exactly(data_root: Path, tmp_path: Path, reference_run: Path) -> None:
    proc = effnet("train", *tiny_overrides(data_root, tmp_path, "term", epochs=6))
    wait_for(tmp_path / "term" / "last.pt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "SIGTERM: saved" in err
    saved = load_checkpoint(tmp_path / "term" / "last.pt")
    assert saved["batches_done"] > 0  # stopped inside an epoch, not at its end
    resumed = effnet("train", "--resume", str(tmp_path / "term"))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert_same_weights(tmp_path / "term" / "last.pt", reference_run / "last.pt")


def test_cli_reports_bad_config_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", "train.epochz=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key train.epochz. Did you mean epochs" in err and "Traceback" not in err


def test_bf16_channels_last_and_gradient_checkpointing_train(data_root: Path, tmp_path: Path,
                                                            restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    overrides = tiny_overrides(data_root, tmp_path, "fast", epochs=1) + [
        "train.amp=bf16", "model.channels_last=true", "model.bn_momentum=0.1", "model.grad_checkpointing=true", "data.batch_augment=false",
        "data.auto_augment=randaugment", "optim.name=adamw", "schedule.name=cosine", "optim.weight_decay=0.05"]
    result = train(load_config(None, overrides))
    assert result.status == "finished" and result.global_step == 6
    ckpt = load_checkpoint(result.run_dir / "last.pt")
    assert all(v.dtype != torch.bfloat16 for v in ckpt["model"].values())  # autocast keeps fp32 weights
    assert ckpt["optimizer"]["param_groups"][0]["weight_decay"] == 0.05


def test_time_limit_stops_evaluates_and_saves_a_resumable_state(data_root: Path, tmp_path: Path,
                                                                restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    result = train(load_config(None, tiny_overrides(data_root, tmp_path, "limited") + ["train.time_limit_min=1e-6"]))
    assert result.status == "time_limit" and result.global_step == 1 and result.epoch == 0
    assert [r["partial_epoch"] for r in result.history] == [True]
    ckpt = load_checkpoint(result.run_dir / "last.pt")
    assert (ckpt["epoch"], ckpt["batches_done"]) == (0, 1)


def test_train_a_spec_directly_and_validate_direct_edits(data_root: Path, tmp_path: Path,
                                                         restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    from effnet.scaling import scale
    from effnet.train.config import ConfigError
    from effnet.zoo.small import fashion_mnist_base

    spec = scale(fashion_mnist_base(), width=0.25, depth=0.5, name="my_net")
    overrides = [o for o in tiny_overrides(data_root, tmp_path, "spec", epochs=1) if not o.startswith("model.")]
    config = load_config(None, overrides + ["model.name=efficientnet_b7"])  # the spec wins over the name
    result = train(config, spec=spec)
    assert load_checkpoint(result.run_dir / "last.pt")["spec"]["name"] == "my_net"
    config.data.crop = "zoom"  # set directly, past load_config's checks
    with pytest.raises(ConfigError, match="data.crop must be one of"):
        train(config, spec=spec)


def test_cpu_training_uses_the_fused_kernel_and_agrees_with_native(data_root: Path, tmp_path: Path, monkeypatch,
                                                                   restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    from effnet.kernels import ops

    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler to build effnet's CPU kernels")
    calls = []
    original = ops.batch_norm_act
    monkeypatch.setattr(ops, "batch_norm_act", lambda *a: calls.append(1) or original(*a))
    runs = {}
    for mode in ("auto", "native"):
        overrides = tiny_overrides(data_root, tmp_path, mode, epochs=1) + ["model.channels_last=true",
                                                                            f"model.kernels={mode}"]
        calls.clear()
        result = train(load_config(None, overrides))
        runs[mode] = (len(calls), load_checkpoint(result.run_dir / "last.pt")["model"])
    assert runs["auto"][0] > 0 and runs["native"][0] == 0  # auto: fused for channels_last fp32 on CPU
    for key, value in runs["native"][1].items():
        torch.testing.assert_close(runs["auto"][1][key], value, rtol=1e-3, atol=1e-4, msg=key)


def test_fused_kernels_required_but_unavailable_is_a_config_error(data_root: Path, tmp_path: Path, monkeypatch,
                                                                 restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    from effnet.kernels.compile import build
    from effnet.train.config import ConfigError

    monkeypatch.setenv("EFFNET_NO_KERNELS", "1")
    build.cache_clear()
    try:
        overrides = tiny_overrides(data_root, tmp_path, "nokernel", epochs=1) + ["model.kernels=fused"]
        with pytest.raises(ConfigError, match="model.kernels=fused: .*EFFNET_NO_KERNELS"):
            train(load_config(None, overrides))
        result = train(load_config(None, tiny_overrides(data_root, tmp_path, "fallback", epochs=1)
                                   + ["model.channels_last=true"]))  # auto falls back to native
        assert result.status == "finished"
    finally:
        monkeypatch.delenv("EFFNET_NO_KERNELS")
        build.cache_clear()


def test_fused_kernels_without_channels_last_say_why_they_fall_back(data_root: Path, tmp_path: Path, capsys,
                                                                     restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    overrides = tiny_overrides(data_root, tmp_path, "nhwc", epochs=1) + ["model.kernels=fused",
                                                                         "model.channels_last=false"]
    with pytest.warns(UserWarning, match="falling back to native ops because model.channels_last=false"):
        result = train(load_config(None, overrides))
    assert result.status == "finished"
    assert "set model.channels_last=true" in capsys.readouterr().err
