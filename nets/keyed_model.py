"""KeyedModel: a converted network, the readout of the frames it reads, saving it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from ..base.store import FileFormat
from ..privacy import AdcFormat, Key, KeyedFrames, Readout, ReadoutError, check_fingerprint
from ..privacy.mask import mask_tensor, remove_mask_inputs

KEYED_MODEL_FILE = FileFormat("keyed-model", 3)


@dataclass(frozen=True)
class BuildStats:
    """What a conversion cost: tracing and analysis, then permutations and index tables."""

    analysis_seconds: float
    table_seconds: float
    table_bytes: int


class KeyedModel(nn.Module):
    """A network that reads protected frames and returns what the plain network returns.

    Built by `privcam.nets.to_keyed`, which gives it the key (kept in memory only: `save` writes
    the fingerprint). `readout` is the order its index tables read (`input_permutation`); frames in
    any other order of the same kind come as KeyedFrames and are moved into it first. A dense
    output comes in keyed order `output_permutation`.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        *,
        key: Key,
        input_size: tuple[int, int, int],
        backend: str,
        readout: Readout,
        adc: AdcFormat | None,
        fold_batchnorm: bool,
        input_permutation: np.ndarray,
        output_permutation: np.ndarray | None,
        build_stats: BuildStats,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self._key = key
        self.input_size = tuple(input_size)
        self.backend = backend
        self.readout = readout
        self.adc = adc
        self.fold_batchnorm = fold_batchnorm
        self.input_permutation = input_permutation
        self.output_permutation = output_permutation
        self.build_stats = build_stats
        self._mask = None
        if readout.masked:
            channels, height, width = self.input_size
            self._mask = mask_tensor(readout.mask(key, height, width, channels, adc.bit_depth))

    @property
    def key_fingerprint(self) -> str:
        return self._key.fingerprint

    @property
    def conversion_settings(self) -> dict[str, Any]:
        """The to_keyed arguments (besides model and key) that rebuild this network."""
        return {
            "input_size": list(self.input_size),
            "backend": self.backend,
            "readout": self.readout.to_dict(),
            "adc": None if self.adc is None else dataclasses.asdict(self.adc),
            "fold_batchnorm": self.fold_batchnorm,
        }

    def forward(self, frames: torch.Tensor | KeyedFrames) -> Any:
        """Run the network on protected frames.

        Args:
            frames: (B, C, H, W) floating point in this model's own readout order
                (`input_permutation`; masked values when it is "masked"), or a KeyedFrames batch,
                whose key, mode and units are checked and whose frames may each have their own
                nonce: each is unmasked and moved into the model's order (a gather in keyed orders;
                the scene order is never formed). So a new nonce per frame changes no table.

        Returns:
            What the plain network returns on the plain frames; a dense output in `output_permutation` order.
        """
        if isinstance(frames, KeyedFrames):
            return self._forward_batch(frames)
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or tuple(frames.shape[1:]) != self.input_size:
            got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"expected keyed frames of shape (B, {', '.join(map(str, self.input_size))}), got {got}")
        if not frames.is_floating_point():
            raise TypeError(f"expected floating point frames (use Frame.to_tensor()), got {frames.dtype}")
        if self._mask is not None:  # the first op: remove the value mask, exactly, in keyed order
            frames = remove_mask_inputs(frames, self._mask, self.adc)
        return self._run(frames)

    def _run(self, frames: torch.Tensor) -> Any:
        if self.backend == "gather":
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.graph_module(frames)

    def _forward_batch(self, batch: KeyedFrames) -> Any:
        """A checked batch, its mask removed and every frame moved into this network's current input
        order (all in keyed orders), then run with the current tables."""
        check_fingerprint(self._key, batch.key_fingerprint, "these frames were")
        if tuple(batch.shape[1:]) != self.input_size:
            raise ValueError(
                f"expected frames of shape (B, {', '.join(map(str, self.input_size))}), got {tuple(batch.shape)}"
            )
        mine, theirs = self.readout, batch.readout
        if (mine.unit, mine.block, mine.per_frame) != (theirs.unit, theirs.block, theirs.per_frame):
            raise ReadoutError(f"these frames are in {theirs}; this network reads frames in {mine}")
        frames = batch.unmasked(self._key).in_order(self._key, self.readout)
        return self._run(frames)

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
