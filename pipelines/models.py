"""The run's network: the plain architecture with its weights, its keyed form, and the weights file."""

from __future__ import annotations

from pathlib import Path

import torch

from ..base.schema import ConfigError
from ..base.store import FileFormatError
from ..nets import KeyedModel, create_model, load_keyed, to_keyed
from ..nets.keyed_model import KEYED_MODEL_FILE
from ..privacy import Key, KeyMismatchError
from .capture import Captured
from .config import WEIGHTS_FILE, RunConfig


def _architecture(config: RunConfig) -> torch.nn.Module:
    """`model:`'s architecture with random weights."""
    return create_model(config.model.arch, num_classes=config.model.num_classes, in_channels=config.model.in_channels)


def check_labels(config: RunConfig, labels: torch.Tensor | None) -> None:
    """The data's class indices fit the model's outputs (a ConfigError naming model.num_classes)."""
    if labels is not None and len(labels) and int(labels.max()) >= config.model.num_classes:
        raise ConfigError(
            f"{config.where('model', 'num_classes')}: model.num_classes is {config.model.num_classes}, "
            f"but data source {config.data.source!r} has class index {int(labels.max())}"
        )


def build_plain_model(config: RunConfig, input_size: tuple[int, int, int]) -> torch.nn.Module:
    """The architecture of `model:` for frames of `input_size` (C, H, W), with `model.weights` loaded
    when given."""
    model = _architecture(config)
    if config.model.weights:
        load_weights(model, Path(config.model.weights))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size))
    except RuntimeError as err:
        raise ConfigError(
            f"{config.where('model', 'arch')}: {config.model.arch} does not take frames of size {input_size} "
            f"(set data.size or model.in_channels): {str(err).splitlines()[0]}"
        ) from None
    return model.train(was_training)


def evaluation_model(config: RunConfig, key: Key | None, captured: Captured) -> torch.nn.Module:
    """The network a run evaluates on `captured`: plain, keyed from plain weights, or, with
    model.keyed and a keyed file as model.weights (a keyed train run's weights.keyed.pt), that
    saved keyed network, rebuilt with the key."""
    weights = config.model.weights
    if config.model.keyed and weights and KEYED_MODEL_FILE.holds(weights):
        try:
            keyed = load_keyed(weights, _architecture(config), key)
        except (FileFormatError, KeyMismatchError, RuntimeError) as err:
            raise ConfigError(f"{config.where('model', 'weights')}: {str(err).splitlines()[0]}") from None
        if tuple(keyed.conversion_settings["input_size"]) != captured.input_size:
            raise ConfigError(
                f"{config.where('model', 'weights')}: {weights} is keyed for frames of size "
                f"{tuple(keyed.conversion_settings['input_size'])}, the data gives {captured.input_size}"
            )
        return keyed
    model = build_plain_model(config, captured.input_size)
    return make_keyed(model, config, key, captured) if config.model.keyed else model


def make_keyed(model: torch.nn.Module, config: RunConfig, key: Key, captured: Captured) -> KeyedModel:
    """`model` keyed for the protected frames of `captured` (their readout, in the first frame's order
    for the per-frame modes, and code format), with the run's backend. It reads `captured.keyed`."""
    if captured.keyed is None:
        raise ValueError("a keyed network reads protected frames; these were captured without a key")
    frames = captured.keyed
    readout = frames.readout_of(0) if len(frames) else frames.readout
    return to_keyed(model, key, captured.input_size, readout=readout, backend=config.model.backend, adc=frames.adc)


def save_weights(model: torch.nn.Module, path: Path, config: RunConfig, meta: dict) -> None:
    """Plain weights, stored as float16 to keep shipped files small; `meta` says how they were made."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    WEIGHTS_FILE.save(
        path,
        {
            "arch": config.model.arch,
            "num_classes": config.model.num_classes,
            "in_channels": config.model.in_channels,
            "state_dict": state,
            "meta": meta,
        },
    )


def load_weights(model: torch.nn.Module, path: Path) -> dict:
    """Load a weights file into `model`; returns its meta. Every problem is a ConfigError naming the file."""
    try:
        payload = WEIGHTS_FILE.load(path)
    except (FileNotFoundError, FileFormatError) as err:
        raise ConfigError(str(err)) from None
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"{path} does not fit the model ({payload['arch']} weights): {err}") from None
    return payload["meta"]
