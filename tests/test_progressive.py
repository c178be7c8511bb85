"""Progressive learning (EfficientNetV2 section 4.2): the paper's and the official schedule,
mixup/cutmix on halves of a batch, and a run that resumes exactly across a stage boundary."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from effnet.train.checkpoint import load_checkpoint
from effnet.train.config import ConfigError
from effnet.train.config_files import load_config
from effnet.train.loop import train
from effnet.train.progressive import BatchMix, plan, stage_of

from .test_train_loop import assert_same_weights, effnet, tiny_overrides, wait_for, write_fake_fashion_mnist


def test_official_schedule_is_automl_main_py() -> None:
    # V2-S: ibase 128, train size 300, RandAugment 5 -> 10, dropout fixed (reference section 4).
    s = plan(stages=4, schedule="official", size=300, min_size=128, randaugment=(5, 10), mixup=(0, 0),
             cutmix=(0, 0), dropout=(0.1, 0.2))
    assert [st.image_size for st in s] == [171, 214, 257, 300]
    assert [st.randaugment_m for st in s] == [5, 7, 8, 10]  # 5, 6.67, 8.33, 10 in whole magnitudes
    assert {st.dropout for st in s} == {0.2}
    # V2-L: mixup and cutmix 0 -> 0.5 by linspace.
    big = plan(stages=4, schedule="official", size=384, min_size=128, randaugment=(5, 20), mixup=(0, 0.5),
               cutmix=(0, 0.5), dropout=(0.1, 0.4))
    assert [st.image_size for st in big] == [192, 256, 320, 384]
    assert [round(st.cutmix_alpha, 3) for st in big] == [0, 0.167, 0.333, 0.5]


def test_paper_schedule_is_algorithm_1() -> None:
    s = plan(stages=4, schedule="paper", size=300, min_size=128, randaugment=(5, 15), mixup=(0, 0.2),
             cutmix=(0, 0.5), dropout=(0.1, 0.3))
    assert [st.image_size for st in s] == [128, 185, 242, 300]  # S_i = S_0 + (S_e - S_0) * i / (M - 1)
    assert [st.randaugment_m for st in s] == [5, 8, 12, 15]
    assert [round(st.dropout, 3) for st in s] == [0.1, 0.167, 0.233, 0.3]
    assert {st.cutmix_alpha for st in s} == {0.0}  # the paper mixes with mixup only
    assert [stage_of(e, 8, 4) for e in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_mixup_and_cutmix_each_take_half_of_the_batch() -> None:
    torch.manual_seed(0)
    images = torch.rand(8, 1, 12, 12)
    labels = torch.arange(8) % 4
    mixed, targets = BatchMix(4, 0.5, 0.5)(images, labels)
    assert mixed.shape == images.shape and targets.shape == (8, 4)
    torch.testing.assert_close(targets.sum(1), torch.ones(8))
    assert (targets.max(1).values < 1).any()  # something was mixed
    # cutmix pastes a box: the second half keeps some pixels untouched; mixup blends every pixel.
    assert not BatchMix(4, 0.0, 0.0).active and BatchMix(4, 0.2, 0.0).active


def test_progressive_needs_per_image_transforms(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.batch_augment=false"):
        load_config(None, ["progressive.stages=2", "data.batch_augment=true"])
    with pytest.raises(ConfigError, match="progressive.schedule must be one of"):
        load_config(None, ["progressive.stages=2", "progressive.schedule=cosine"])


def _overrides(data: Path, out: Path, name: str) -> list[str]:
    return [o for o in tiny_overrides(data, out, name, epochs=4) if not o.startswith("data.batch_augment")] + [
        "data.batch_augment=false", "data.auto_augment=randaugment", "progressive.stages=2",
        "progressive.schedule=official", "progressive.mixup_max=0.2", "progressive.cutmix_max=0.2",
        "progressive.min_image_size=6"]


@pytest.fixture(scope="module")
def progressive_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist-progressive"))
    out = tmp_path_factory.mktemp("runs")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        result = train(load_config(None, _overrides(data, out, "reference")))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert result.status == "finished"
    return data, result.run_dir


def test_stages_train_at_their_size_and_evaluate_at_the_final_one(progressive_reference) -> None:  # type: ignore[no-untyped-def]
    _, run = progressive_reference
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 12 px final, 6 px first: the official schedule starts half way up (9 px), then 12.
    assert [(r["stage"], r["stage_image_size"]) for r in records] == [(1, 9), (1, 9), (2, 12), (2, 12)]
    assert all("val_top1" in r for r in records)


def test_resume_continues_exactly_across_a_stage_boundary(progressive_reference, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, reference = progressive_reference
    proc = effnet("train", *_overrides(data, tmp_path, "killed"))
    wait_for(tmp_path / "killed" / "last.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"]
    assert stopped_at < 2, "killed after the stage boundary: the resume would not cross it"
    resumed = effnet("train", "--resume", str(tmp_path / "killed"))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "stage 2/2" in err
    assert_same_weights(tmp_path / "killed" / "last.pt", reference / "last.pt")
