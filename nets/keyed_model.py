"""KeyedModel: a converted network, its key fingerprint and shapes; saving and rebuilding it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from ..base.store import FileFormat
from ..privacy import Key, Readout

KEYED_MODEL_FILE = FileFormat("keyed-model", 2)
INPUT_CACHE_SIZE = 32  # first-layer tables kept for recent input readouts (per-frame nonces)


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

    Built by `privcam.nets.to_keyed`. `readout` is the order of the frames it reads (with the
    current nonce in "per_frame" mode); a dense output comes in keyed order `output_permutation`.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        *,
        key_fingerprint: str,
        input_size: tuple[int, int, int],
        backend: str,
        readout: Readout,
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
        self.readout = readout
        self.fold_batchnorm = fold_batchnorm
        self.input_permutation = input_permutation
        self.output_permutation = output_permutation
        self.build_stats = build_stats
        self._input_consumers = input_consumers
        self._input_tables: dict[Readout, tuple[np.ndarray, list[dict[str, torch.Tensor]]]] = {}

    @property
    def conversion_settings(self) -> dict[str, Any]:
        """The to_keyed arguments (besides model and key) that rebuild this network."""
        return {
            "input_size": list(self.input_size),
            "backend": self.backend,
            "readout": self.readout.to_dict(),
            "fold_batchnorm": self.fold_batchnorm,
        }

    def forward(self, frames: torch.Tensor) -> Any:
        """Run the network on keyed frames.

        Args:
            frames: (B, C, H, W) floating point, in this model's readout order (`input_permutation`).

        Returns:
            What the plain network returns on the plain frames; a dense output in `output_permutation` order.
        """
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or tuple(frames.shape[1:]) != self.input_size:
            got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"expected keyed frames of shape (B, {', '.join(map(str, self.input_size))}), got {got}")
        if not frames.is_floating_point():
            raise TypeError(f"expected floating point frames (use Frame.to_tensor()), got {frames.dtype}")
        if self.backend == "gather":
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.graph_module(frames)

    def set_input_readout(self, key: Key, readout: Readout) -> None:
        """Read frames in `readout` order from now on, e.g. the next frame of a "per_frame" stream.

        Only the tables of the ops that read the frame itself change; every later map keeps its
        order. The tables of recent readouts are cached. Needs the key the model was converted with.

        Args:
            key: the key the model was converted with.
            readout: the order of the next frames; for "per_frame", with their nonce.
        """
        if not isinstance(readout, Readout):
            raise TypeError(f"expected a privcam Readout, got {type(readout).__name__}")
        if key.fingerprint != self.key_fingerprint:
            raise KeyMismatchError(
                f"this model was keyed with fingerprint {self.key_fingerprint}, not {key.fingerprint}"
            )
        if self._input_consumers is None:
            raise ValueError(
                "this network uses the frame's order beyond its first layers (a residual or a Linear on the "
                "frame); a new input readout needs a network whose input feeds only spatial ops"
            )
        cached = self._input_tables.get(readout)
        if cached is None:
            _, height, width = self.input_size
            perm = readout.permutation(key, height, width)
            buffers = [c.module.keyed_buffers(c.stencil, perm, c.output_permutation) for c in self._input_consumers]
            cached = self._input_tables[readout] = (perm, buffers)
            while len(self._input_tables) > INPUT_CACHE_SIZE:
                self._input_tables.pop(next(iter(self._input_tables)))
        perm, buffers = cached
        for consumer, consumer_buffers in zip(self._input_consumers, buffers, strict=True):
            consumer.module.rekey(consumer_buffers)
        self.input_permutation = perm
        self.readout = readout

    def set_input_nonce(self, key: Key, nonce: int) -> None:
        """Read the frames of nonce `nonce` of this model's "per_frame" readout from now on."""
        self.set_input_readout(key, self.readout.for_frame(nonce))

    def forward_nonces(self, frames: torch.Tensor, nonces: list[int], key: Key) -> torch.Tensor:
        """A batch of "per_frame" frames (B, C, H, W), frame i read out with nonces[i]: frames sharing
        a nonce run together. Returns the outputs in the batch's order."""
        if len(nonces) != len(frames):
            raise ValueError(f"expected one nonce per frame: {len(frames)} frames, {len(nonces)} nonces")
        groups: dict[int, list[int]] = {}
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
        return f"key={self.key_fingerprint}, input_size={self.input_size}, backend={self.backend!r}, {self.readout}"

    def save(self, path: str | os.PathLike) -> Path:
        """Write state dict, key fingerprint and conversion settings (never the key) atomically;
        privcam.nets.load_keyed rebuilds the network from them, the architecture and the key."""
        payload = {
            "key_fingerprint": self.key_fingerprint,
            "settings": self.conversion_settings,
            "state_dict": self.state_dict(),
        }
        return KEYED_MODEL_FILE.save(path, payload)
