"""Quantisation-aware training (``quant.qat=true``): a QAT run folder whose int8 model agrees
with its fake-quantised graph, batch norm and ranges frozen from their epochs on, exact
resume of a cut QAT run, and one-line errors for configs QAT cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from effnet import create_model
from effnet.cli import main as cli_main
from effnet.train import epochs
from effnet.train.checkpoint import load_checkpoint
from effnet.train.config import ConfigError
from effnet.train.config_files import load_config
from effnet.train.engine import Engine
from effnet.train.loop import train
from effnet.train.run_eval import evaluate_run
from effnet.weights import read_weights

from .optional import require
from .test_train_loop import tiny_overrides, write_fake_fashion_mnist


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))



@pytest.fixture(scope="module")
def float_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained float run to start QAT from."""
    out = tmp_path_factory.mktemp("float")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        train(load_config(None, tiny_overrides(data_root, out, "float", epochs=3) + ["optim.lr=0.05", "train.ema_decay=0"]))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return out / "float"


def qat_overrides(data_root: Path, float_run: Path, out: Path, name: str, epochs: int = 2) -> list[str]:
    kept = [o for o in tiny_overrides(data_root, out, name, epochs=epochs) if not o.startswith("model.")]
    return kept + ["model.name=null", f"model.weights={float_run}", "quant.qat=true", "train.ema_decay=0",
                   "optim.lr=0.002", "schedule.warmup_epochs=0"]


@pytest.fixture(scope="module")
def qat_run(data_root: Path, float_run: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tiny QAT run from the float run (its TrainResult)."""
    require("torchao")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        return train(load_config(None, qat_overrides(data_root, float_run, tmp_path_factory.mktemp("qat"), "qat")))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def test_qat_run_folder_and_its_int8_model(qat_run) -> None:  # type: ignore[no-untyped-def]
    from effnet.train.qat import QAT_STATE_FILE, int8_model, load_qat_graph

    result = qat_run
    run = result.run_dir
    assert (run / QAT_STATE_FILE).is_file() and (run / "model.safetensors").is_file()
    state, meta = read_weights(run)
    quantization = meta.provenance["quantization"]  # type: ignore[union-attr]
    assert quantization["method"] == "qat" and quantization["per_channel"] and quantization["freeze_bn_epoch"] is None
    assert result.test is not None and "int8_top1" in result.test
    # model.safetensors is the float network under its own names: every reader of weights takes it.
    create_model(None, weights=run)
    quant, _ = read_weights(run / QAT_STATE_FILE)
    assert quant and all(key.startswith("activation_post_process_") for key in quant)
    assert any(v.dtype.is_floating_point and v.numel() > 1 and torch.all(v > 0) for k, v in quant.items()
               if k.endswith(".scale")), "no per-channel scales were learned"

    graph = load_qat_graph(run)
    int8 = int8_model(graph)
    images = torch.randn(64, 1, 12, 12)
    with torch.no_grad():
        fake, real = graph(images), int8(images)
    # The fake-quantised graph simulates the int8 model: they differ by a few steps of the int8
    # output grid (rounding in another order; folded BN), not by more.
    spread = fake.max() - fake.min()
    assert (fake - real).abs().max() <= 0.15 * spread and (fake - real).abs().mean() <= 0.03 * spread, \
        ((fake - real).abs().max(), spread)
    assert (fake.argmax(1) == real.argmax(1)).float().mean() >= 0.9
    # Rebuilt from the files, the graph holds the learned state (not a fresh one).
    assert torch.equal(graph.state_dict()[next(iter(quant))], quant[next(iter(quant))])

    evaluation = evaluate_run(run, device="cpu")
    assert {"fake_quant", "int8"} <= set(evaluation.report()["quantized"])
    assert evaluation.report()["quantized"]["int8"]["top1"] == pytest.approx(result.test["int8_top1"])


def test_the_int8_model_runs_in_executorch_with_the_learned_scales(qat_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    require("executorch")
    from effnet.deploy.qat import executorch_runner, export_int8_executorch
    from effnet.train.qat import int8_model, load_qat_graph

    int8 = int8_model(load_qat_graph(qat_run.run_dir))
    pte = export_int8_executorch(int8, tmp_path / "int8.pte", in_chans=1, image_size=12, batch=16)
    images = torch.randn(16, 1, 12, 12)
    with torch.no_grad():
        ours, theirs = int8(images), executorch_runner(pte)(images)
    # XNNPACK's int8 kernels requantise in integers, PyTorch's reference graph in float: a few
    # steps of the output grid apart at most.
    spread = ours.max() - ours.min()
    assert (ours - theirs).abs().max() <= 0.15 * spread, ((ours - theirs).abs().max(), spread)
    assert (ours.argmax(1) == theirs.argmax(1)).float().mean() >= 0.8


def _bn_buffers(graph: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in graph.state_dict().items() if k.endswith(("running_mean", "running_var"))}


def _observer_ranges(graph: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in graph.state_dict().items() if k.endswith(("min_val", "max_val"))}


def _step(graph: torch.nn.Module) -> None:
    graph.train()
    optimizer = torch.optim.SGD(graph.parameters(), lr=0.01)
    loss = graph(torch.randn(8, 1, 12, 12) * 3).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_bn_statistics_and_ranges_freeze_from_their_epochs() -> None:
    require("torchao")
    from effnet.train.qat import apply_freezes, prepare_qat

    torch.manual_seed(0)
    graph = prepare_qat(create_model("fmnist_lab", in_chans=1, drop_path_rate=0.0), 12)
    schedule = {"freeze_bn_epoch": 2, "freeze_observer_epoch": 3, "epochs": 3}
    for epoch, (bn_moves, ranges_move) in enumerate([(True, True), (False, True), (False, False)]):
        _step(graph)  # train() puts BN back in training mode; the schedule freezes again
        assert apply_freezes(graph, epoch, **schedule) == (["batch-norm statistics"] if epoch == 1 else
                                                           [] if epoch == 0 else
                                                           ["batch-norm statistics", "quantisation ranges"])
        bn, ranges = _bn_buffers(graph), _observer_ranges(graph)
        loss = graph(torch.randn(8, 1, 12, 12) * 3).square().mean()
        loss.backward()
        moved_bn = any(not torch.equal(bn[k], v) for k, v in _bn_buffers(graph).items())
        moved_ranges = any(not torch.equal(ranges[k], v) for k, v in _observer_ranges(graph).items())
        assert (moved_bn, moved_ranges) == (bn_moves, ranges_move), f"epoch {epoch + 1}"
    # Evaluation never moves a range, even before they are frozen.
    graph = prepare_qat(create_model("fmnist_lab", in_chans=1, drop_path_rate=0.0), 12)
    _step(graph)
    ranges = _observer_ranges(graph)
    graph.eval()
    with torch.no_grad():
        graph(torch.randn(8, 1, 12, 12) * 10)
    assert all(torch.equal(ranges[k], v) for k, v in _observer_ranges(graph).items())
    graph.train()
    graph(torch.randn(8, 1, 12, 12) * 10)
    assert any(not torch.equal(ranges[k], v) for k, v in _observer_ranges(graph).items()), "train() left them off"


def test_a_cut_qat_run_resumes_exactly(data_root: Path, float_run: Path, tmp_path: Path, monkeypatch,
                                       restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    require("torchao")
    extra = ["quant.freeze_bn_epoch=2", "quant.freeze_observer_epoch=3"]
    reference = train(load_config(None, qat_overrides(data_root, float_run, tmp_path, "whole", epochs=3) + extra))
    step = Engine.train_step
    calls = {"n": 0}
    # What SIGTERM's handler does: set the loop's stop flag. (A real signal is delivered in
    # tests/test_train_loop.py, to a subprocess: a pytest-xdist worker may run a test off the
    # main thread, where no handler can be installed and the signal would end the worker.)
    guards: list[epochs._StopOnSigterm] = []
    enter = epochs._StopOnSigterm.__enter__

    def remember(self):  # type: ignore[no-untyped-def]
        guards.append(self)
        return enter(self)

    def cut_in_epoch_two(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 9:  # 6 steps an epoch: the third step of epoch 2, whose BN is frozen
            guards[-1].requested = True
        return step(self, *args, **kwargs)

    config = load_config(None, qat_overrides(data_root, float_run, tmp_path, "cut", epochs=3) + extra)
    monkeypatch.setattr(Engine, "train_step", cut_in_epoch_two)
    monkeypatch.setattr(epochs._StopOnSigterm, "__enter__", remember)
    assert train(config).status == "sigterm"
    monkeypatch.setattr(Engine, "train_step", step)
    resumed = train(config, resume=tmp_path / "cut")
    assert resumed.status == "finished" and resumed.global_step == reference.global_step
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    assert any(k.startswith("activation_post_process_") for k in a["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert resumed.test == reference.test


@pytest.mark.parametrize(("overrides", "expected"), [
    (["quant.qat=true"], "quant.qat=true fine-tunes a trained model: set model.weights"),
    (["quant.qat=true", "model.weights=RUN", "model.channels_last=true", "train.ema_decay=0"],
     "set model.channels_last=false"),
    (["quant.qat=true", "model.weights=RUN"], "set train.ema_decay=0"),
    (["quant.freeze_bn_epoch=1"], "quant.freeze_bn_epoch applies to quantisation-aware training"),
    (["quant.qat=true", "model.weights=RUN", "train.ema_decay=0", "train.epochs=3", "quant.freeze_bn_epoch=4"],
     "quant.freeze_bn_epoch must be >= 0 and <= 3"),
    (["quant.qat=true", "model.weights=RUN", "train.ema_decay=0", "quant.freeze_observer_epoch=1"],
     "quant.freeze_observer_epoch=1 fixes the ranges before they saw any data"),
])
def test_a_bad_quant_config_is_a_one_line_error(capsys, overrides: list[str], expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, overrides)
    assert cli_main(["train", *overrides]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and expected in err[0] and "Traceback" not in err[0], err


def test_qat_under_ddp_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    from effnet.train.distributed import DistInfo
    from effnet.train.prepare import prepare_run

    config = load_config(None, ["quant.qat=true", "model.weights=RUN", "train.ema_decay=0", f"run.out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="quant.qat=true trains the exported graph in one process"):
        prepare_run(config, DistInfo(rank=0, world_size=2), None, None)


def test_optimize_offers_the_runs_learned_int8(qat_run) -> None:  # type: ignore[no-untyped-def]
    require("onnxruntime")
    require("onnxscript")
    from effnet.optimize import choose
    from effnet.optimize.candidates import Candidate
    from effnet.optimize.evaluation import Evaluation
    from effnet.train.qat import int8_model

    run = qat_run.run_dir
    model = create_model(None, weights=run).eval()
    images = torch.randn(48, 1, 12, 12, generator=torch.Generator().manual_seed(3)).numpy()
    with torch.no_grad():
        learned = int8_model(run)(torch.from_numpy(images)).argmax(1).numpy()
    # Scored against the run's own int8 classes: the exported QDQ graph must give them back.
    evaluation = Evaluation("agreement with the QAT int8 graph", images, learned, images[:4], "random images")
    qat = Candidate("onnx", "int8-qat")
    choice = choose(model, evaluation, resolution=12, batch=4, budget=100.0, candidates=[qat], rounds=1,
                    min_time=0.01, use_cache=False, qat_run=run)
    scores = {r.name: r.score for r in choice.rows}
    assert scores["onnx int8-qat"] >= 90.0, scores
    with pytest.raises(ValueError, match="quantisation-aware training run"):
        choose(model, evaluation, resolution=12, batch=4, budget=100.0, candidates=[qat], use_cache=False)
