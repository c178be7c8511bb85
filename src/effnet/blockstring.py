"""The official TF block-string format <-> :class:`~effnet.spec.StageSpec`.

Official strings look like ``r1_k3_s11_e1_i32_o16_se0.25`` (repeats, kernel, strides,
expand ratio, in, out, SE ratio), with ``noskip`` to turn off the identity shortcut
(tensorflow/tpu ``efficientnet_builder.BlockDecoder``). Blocks other than MBConv carry their
kind as a leading word, e.g. ``ds_r1_k3_s22_e1_i32_o64_noskip``; strings without one are
MBConv, so every official string parses unchanged. EfficientNetV2's automl dialect parses
too: one-digit strides (``s2``) and ``c1`` for Fused-MBConv (``c0``: MBConv), as in
``r2_k3_s2_e4_i24_o48_c1``; effnet writes that block as ``fused_r2_k3_s22_e4_i24_o48``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .spec import BLOCK_KINDS, SpecError, StageSpec

_REQUIRED = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expand_ratio",
             "i": "in_channels", "o": "out_channels"}


class BlockStringError(SpecError):
    """A malformed block string; the message names the bad field and its position."""


def format_stage(stage: StageSpec) -> str:
    parts = [] if stage.kind == "mbconv" else [stage.kind]
    parts += [
        f"r{stage.repeats}",
        f"k{stage.kernel}",
        f"s{stage.stride}{stage.stride}",
        f"e{_format_number(stage.expand_ratio)}",
        f"i{stage.in_channels}",
        f"o{stage.out_channels}",
    ]
    if stage.se_ratio > 0:
        parts.append(f"se{_format_number(stage.se_ratio)}")
    if not stage.skip:
        parts.append("noskip")
    return "_".join(parts)


def parse_stage(text: str) -> StageSpec:
    if not isinstance(text, str) or not text.strip():
        raise BlockStringError(f"block string must be a non-empty string, got {text!r}")
    tokens = text.strip().split("_")
    values: dict[str, object] = {}
    kind = "mbconv"
    for position, token in enumerate(tokens):
        def fail(why: str) -> BlockStringError:
            return BlockStringError(
                f"block string {text!r}: field {position} ({token!r}): {why}. "  # noqa: B023 - used in this iteration
                "Expected e.g. 'r1_k3_s11_e1_i32_o16_se0.25' (r=repeats, k=kernel, s=strides, "
                "e=expand ratio, i=in, o=out, se=SE ratio, optional 'noskip')"
            )

        if position == 0 and token in BLOCK_KINDS:
            kind = token
            continue
        if token == "noskip":
            key, raw = "noskip", ""
        elif token[:1] == "c" and token[1:] in ("0", "1"):  # automl's conv_type
            key, raw = "c", token[1:]
        elif token.startswith("se"):
            key, raw = "se", token[2:]
        elif token[:1] in _REQUIRED:
            key, raw = token[:1], token[1:]
        else:
            known = "r, k, s, e, i, o, se, c0/c1, noskip" + (f" or a leading kind {BLOCK_KINDS}" if position == 0 else "")
            raise fail(f"unknown field; known fields are {known}")
        if key in values:
            raise fail(f"'{key}' is given twice")
        values[key] = _parse_value(key, raw, fail)
    if "c" in values:
        conv_type = "fused" if values.pop("c") == 1 else "mbconv"
        if kind not in ("mbconv", conv_type):
            raise BlockStringError(f"block string {text!r}: a {kind} block cannot have the automl conv type "
                                   f"c{1 if conv_type == 'fused' else 0} ({conv_type})")
        kind = conv_type
    missing = [f"{k} ({_REQUIRED[k]})" for k in _REQUIRED if k not in values]
    if missing:
        raise BlockStringError(f"block string {text!r} lacks the field(s) {', '.join(missing)}")
    try:
        return StageSpec(
            kind=kind,  # type: ignore[arg-type]
            repeats=values["r"],  # type: ignore[arg-type]
            kernel=values["k"],  # type: ignore[arg-type]
            stride=values["s"],  # type: ignore[arg-type]
            expand_ratio=values["e"],  # type: ignore[arg-type]
            in_channels=values["i"],  # type: ignore[arg-type]
            out_channels=values["o"],  # type: ignore[arg-type]
            se_ratio=values.get("se", 0.0),  # type: ignore[arg-type]
            skip="noskip" not in values,
        )
    except SpecError as error:
        raise BlockStringError(f"block string {text!r}: {error}") from None


def parse_stages(texts: Iterable[str]) -> tuple[StageSpec, ...]:
    return tuple(parse_stage(t) for t in texts)


def format_stages(stages: Iterable[StageSpec]) -> list[str]:
    return [format_stage(s) for s in stages]


def _parse_value(key: str, raw: str, fail):  # type: ignore[no-untyped-def]
    if key == "noskip":
        return True
    if key == "s":
        # TF writes strides per axis ("s22"); a single digit ("s2") is accepted too.
        if not raw.isdigit() or len(raw) not in (1, 2):
            raise fail("strides must be one or two digits, like s11 or s22")
        if len(raw) == 2 and raw[0] != raw[1]:
            raise fail("only equal strides on both axes are supported")
        return int(raw[0])
    if key in ("e", "se"):
        try:
            number = float(raw)
        except ValueError:
            raise fail("expected a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise fail("expected a finite number")
        return number
    if not raw.isdigit():
        raise fail("expected a whole number")
    return int(raw)


def _format_number(value: float) -> str:
    # repr() of a float round-trips exactly; whole numbers print as TF writes them ("e6").
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)
