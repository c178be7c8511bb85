"""Which weights a run yields: each epoch is scored on minival (the raw and the EMA weights;
the EMA's score selects when EMA is on), the best epoch so far is written as
``RUN/model.safetensors`` with its provenance, and the test set is evaluated once, at the
end, on that model. The test set takes minival's place only when the run held none out
(``data.minival=0``, which the run announces)."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from ..weights import read_weights, save_weights
from ..weights.run_folder import selection_provenance, with_test
from .distributed import barrier
from .prepare import TrainingRun
from .qat import int8_model, load_qat_graph, quantization_provenance, save_qat_model


def score_epoch(run: TrainingRun, record: dict[str, Any]) -> tuple[float, nn.Module]:
    """Validation top-1 of the raw and the EMA weights (into ``record``); the score that
    selects the best epoch, and the weights it belongs to (EMA when on)."""
    engine, loader = run.engine, run.data.val_loader
    score, chosen = -1.0, run.model
    if run.ema is None or run.config.train.eval_raw:
        val = engine.evaluate(run.model, loader)
        record.update({f"val_{k}": v for k, v in val.summary().items()})
        score = val.top1
    if run.ema is not None:
        ema_val = engine.evaluate(run.ema.module, loader)
        record.update({f"ema_val_{k}": v for k, v in ema_val.summary().items()})
        score, chosen = ema_val.top1, run.ema.module
    return score, chosen


def save_selected(run: TrainingRun, chosen: nn.Module, record: dict[str, Any]) -> None:
    """Write ``chosen`` (the weights of the best epoch so far) as ``RUN/model.safetensors``."""
    ema = run.ema is not None
    provenance = selection_provenance(run.config.to_dict(), dataset=run.config.data.dataset, epoch=record["epoch"],
                                      step=record["step"], ema=ema, minival_images=run.data.minival,
                                      val_top1=record.get("ema_val_top1" if ema else "val_top1"))
    q = run.config.quant
    if q.qat:
        provenance["quantization"] = quantization_provenance(
            chosen, image_size=run.data.image_size, per_channel=q.per_channel,  # type: ignore[arg-type]
            freeze_bn_epoch=q.freeze_bn_epoch, freeze_observer_epoch=q.freeze_observer_epoch)
    meta = run.folder.model_meta(chosen.spec, classes=run.data.classes, preprocessing=run.data.preprocessing,
                                 provenance=provenance)
    if q.qat:
        save_qat_model(run.folder, chosen, meta)  # type: ignore[arg-type]
    else:
        save_weights(run.folder.model, chosen.state_dict(), meta)


def final_test(run: TrainingRun) -> dict[str, float]:
    """The test set, once, on the model that minival selected (RUN/model.safetensors); its
    top-1 and top-5 are written into that file's provenance."""
    barrier(run.info)
    state, meta = read_weights(run.folder.model)
    assert run.data.test_loader is not None
    if run.config.quant.qat:
        model: nn.Module = load_qat_graph(run.folder.path)
        int8 = run.engine.evaluate(int8_model(model), run.data.test_loader).summary()  # type: ignore[arg-type]
    else:
        model = copy.deepcopy(run.ema.module if run.ema is not None else run.model)
        model.load_state_dict(state)
    test = run.engine.evaluate(model, run.data.test_loader).summary()
    if run.main and meta is not None:
        provenance = with_test(meta.provenance, test)
        if run.config.quant.qat:
            provenance["quantization"] = {**provenance["quantization"], "int8_test_top1": int8["top1"],
                                          "int8_test_top5": int8["top5"]}
            test = {**test, "int8_top1": int8["top1"], "int8_top5": int8["top5"]}
        save_weights(run.folder.model, state, meta.replace(provenance=provenance))
        run.say(f"test top-1 {test['top1']:.2f}%  top-5 {test['top5']:.2f}% (the model selected on minival, "
                f"epoch {provenance.get('epochs')}; evaluated once)"
                + (f"; int8 (convert_pt2e) top-1 {test['int8_top1']:.2f}%" if "int8_top1" in test else ""))
    return test


__all__ = ["final_test", "save_selected", "score_epoch"]
