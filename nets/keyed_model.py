"""KeyedModel: a converted network, its key fingerprint and shapes; saving and rebuilding it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from ..privacy import Key, readout_permutation
from ..privacy.atomic import atomic_write

CHECKPOINT_FORMAT = "privcam-keyed-model"
CHECKPOINT_VERSION = 1
NONCE_CACHE_SIZE = 32  # first-layer tables kept for recent nonces


class KeyMismatchError(ValueError):
    """A keyed checkpoint was made with another key than the one given."""


@dataclass(frozen=True)
class BuildStats:
    """What a conversion cost: tracing and analysis, then permutations and index tables."""

    analysis_seconds: float
    table_seconds: float
    table_bytes: int


@dataclass(frozen=True)
class InputConsumer:
    """A keyed op that reads the frame itself: the only ops a new per-frame order changes."""

    module: nn.Module
    stencil: Any
    output_permutation: np.ndarray


class KeyedModel(nn.Module):
    """A network that reads keyed frames (B, C, H, W) and returns what the plain network returns.

    Built by `privcam.nets.to_keyed`; a dense output comes in keyed order `output_permutation`.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        *,
        key_fingerprint: str,
        input_size: tuple[int, int, int],
        backend: str,
        unit: str,
        block: int,
        nonce: int | None,
        fold_batchnorm: bool,
        input_permutation: np.ndarray,
        output_permutation: np.ndarray | None,
        build_stats: BuildStats,
        input_consumers: list[InputConsumer] | None = None,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.key_fingerprint = key_fingerprint
        self.input_size = tuple(input_size)
        self.backend = backend
        self.unit = unit
        self.block = block
        self.nonce = nonce
        self.fold_batchnorm = fold_batchnorm
        self.input_permutation = input_permutation
        self.output_permutation = output_permutation
        self.build_stats = build_stats
        self._input_consumers = input_consumers
        self._nonce_tables: dict[int | None, tuple[np.ndarray, list[dict[str, torch.Tensor]]]] = {}

    @property
    def conversion_settings(self) -> dict[str, Any]:
        """The to_keyed arguments (besides model and key) that rebuild this network."""
        return {
            "input_size": list(self.input_size),
            "backend": self.backend,
            "unit": self.unit,
            "block": self.block,
            "nonce": self.nonce,
            "fold_batchnorm": self.fold_batchnorm,
        }

    def forward(self, frames: torch.Tensor) -> Any:
        """frames: (B, C, H, W) floating point, shuffled by this model's readout permutation."""
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or tuple(frames.shape[1:]) != self.input_size:
            got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"expected keyed frames of shape (B, {', '.join(map(str, self.input_size))}), got {got}")
        if not frames.is_floating_point():
            raise TypeError(f"expected floating point frames (use Frame.to_tensor()), got {frames.dtype}")
        if self.backend == "gather":
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.graph_module(frames)

    def set_input_nonce(self, key: Key, nonce: int | None) -> None:
        """Read frames shuffled with readout nonce `nonce` from now on (per-frame key rotation).

        Only the tables of the ops that read the frame itself change; every later map keeps its
        order. The tables of recent nonces are cached. Needs the key the model was converted with.
        """
        if key.fingerprint != self.key_fingerprint:
            raise KeyMismatchError(
                f"this model was keyed with fingerprint {self.key_fingerprint}, not {key.fingerprint}"
            )
        if self._input_consumers is None:
            raise ValueError(
                "this network uses the frame's order beyond its first layers (a residual or a Linear on the "
                "frame); per-frame nonces need a network whose input feeds only spatial ops"
            )
        cached = self._nonce_tables.get(nonce)
        if cached is None:
            _, height, width = self.input_size
            perm = readout_permutation(key, height, width, self.unit, self.block, nonce)
            buffers = [c.module.keyed_buffers(c.stencil, perm, c.output_permutation) for c in self._input_consumers]
            cached = self._nonce_tables[nonce] = (perm, buffers)
            while len(self._nonce_tables) > NONCE_CACHE_SIZE:
                self._nonce_tables.pop(next(iter(self._nonce_tables)))
        perm, buffers = cached
        for consumer, consumer_buffers in zip(self._input_consumers, buffers, strict=True):
            consumer.module.rekey(consumer_buffers)
        self.input_permutation = perm
        self.nonce = nonce

    def forward_nonces(self, frames: torch.Tensor, nonces: list[int | None], key: Key) -> torch.Tensor:
        """A batch whose frames carry different readout nonces: frames sharing a nonce run together."""
        if len(nonces) != len(frames):
            raise ValueError(f"expected one nonce per frame: {len(frames)} frames, {len(nonces)} nonces")
        groups: dict[int | None, list[int]] = {}
        for index, nonce in enumerate(nonces):
            groups.setdefault(nonce, []).append(index)
        outputs, order = [], []
        for nonce, indices in groups.items():
            self.set_input_nonce(key, nonce)
            output = self(frames[indices])
            if not isinstance(output, torch.Tensor):
                raise TypeError("mixed-nonce batches need a model with one tensor output")
            outputs.append(output)
            order.extend(indices)
        merged = torch.cat(outputs)
        return merged[torch.argsort(torch.tensor(order))]

    def extra_repr(self) -> str:
        return f"key={self.key_fingerprint}, input_size={self.input_size}, backend={self.backend!r}, unit={self.unit!r}"

    def save(self, path: str | os.PathLike) -> Path:
        """Write state dict, key fingerprint and shapes (never the key) atomically to `path`."""
        path = Path(path)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "key_fingerprint": self.key_fingerprint,
            "settings": self.conversion_settings,
            "state_dict": self.state_dict(),
        }
        with atomic_write(path) as f:
            torch.save(payload, f)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: nn.Module, key: Key, map_location: Any = "cpu") -> KeyedModel:
        """Rebuild a saved keyed network from its architecture (`model`) and `key`, then load its weights."""
        from .convert import to_keyed

        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:
            raise ValueError(f"{path} is not a readable privcam keyed checkpoint: {err}") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a privcam keyed checkpoint (format {CHECKPOINT_FORMAT!r})")
        if payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path} has checkpoint version {payload.get('version')}, expected {CHECKPOINT_VERSION}")
        if payload["key_fingerprint"] != key.fingerprint:
            raise KeyMismatchError(
                f"{path} was made with the key of fingerprint {payload['key_fingerprint']}, "
                f"but the key given has fingerprint {key.fingerprint}"
            )
        settings = dict(payload["settings"])
        settings["input_size"] = tuple(settings["input_size"])
        if settings["fold_batchnorm"]:
            model = model.eval()
        keyed = to_keyed(model, key, **settings)
        keyed.load_state_dict(payload["state_dict"])
        return keyed
