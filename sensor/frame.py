"""Frame: what the camera sends. Raw DN in readout order plus metadata (never the key)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.images import write_png
from ..base.store import FileFormat
from ..privacy import Key, KeyedFrames, Readout
from ..privacy.mask import AdcFormat
from .isp import render_rgb8

FRAME_FILE = FileFormat("frame", 2, container="npz")


class FrameKeyError(ValueError):
    """A frame was revealed with a key other than the one it was captured with."""


@dataclass(frozen=True)
class Frame:
    """One capture.

    Args:
        data: uint16 (H, W) or (H, W, C) raw DN, in readout order when protected.
        metadata: JSON-safe capture record: the key's fingerprint (None for a plain frame), the
            readout it is in (`Readout.to_dict()`, None for a plain frame), the sensor settings
            that scale it (bit depth, black level, CFA, QE), seed and frame index. Never the key.
    """

    data: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def protected(self) -> bool:
        return self.metadata.get("key_fingerprint") is not None

    @property
    def readout(self) -> Readout | None:
        """The order this frame is in; None for a plain frame (physical order)."""
        data = self.metadata.get("readout")
        return None if data is None else Readout.from_dict(data)

    @property
    def adc(self) -> AdcFormat:
        """How this frame's codes map to network inputs (bit depth and black level)."""
        return AdcFormat(self.metadata["bit_depth"], self.metadata["black_level_dn"])

    @property
    def height(self) -> int:
        return self.data.shape[0]

    @property
    def width(self) -> int:
        return self.data.shape[1]

    def reveal(self, key: Key, strict: bool = True) -> Frame:
        """The frame in physical order, for whoever holds the key it was captured with.

        strict=False unscrambles with any key, without the fingerprint check: with a wrong key it
        shows what that key's holder would get.
        """
        if not self.protected:
            return self
        if strict and key.fingerprint != self.metadata["key_fingerprint"]:
            raise FrameKeyError(
                f"this frame was captured with the key of fingerprint {self.metadata['key_fingerprint']}, "
                f"not with the key of fingerprint {key.fingerprint}"
            )
        data = self.readout.reveal(key, self.data, self.adc.bit_depth)
        return Frame(data, {**self.metadata, "key_fingerprint": None, "readout": None, "revealed": True})

    def to_tensor(self, packed: bool = False) -> torch.Tensor:
        """Float32 (C, H, W) in readout order, black level removed and scaled so white is 1.

        packed=True turns a Bayer raw frame into its 4-channel packed form (4, H/2, W/2), one
        channel per position in the 2x2 cell; a protected frame needs quad (or even block) readout
        for that, since pixel readout scatters the cells.
        """
        tensor = torch.from_numpy(self.adc.to_unit(self.data.astype(np.float32)).astype(np.float32))
        tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()
        if not packed:
            return tensor
        if self.metadata["cfa"] == "none":
            raise ValueError("packed=True needs a Bayer frame (cfa rggb, bggr, grbg or gbrg)")
        if self.protected and self.readout.unit == "pixel":
            raise ValueError("packed=True needs quad or block readout: pixel readout scatters the 2x2 cells")
        return torch.nn.functional.pixel_unshuffle(tensor.unsqueeze(0), 2)[0]

    def to_rgb8(self) -> np.ndarray:
        """An 8-bit sRGB view for people, rendered by the simple ISP (isp.py): white balance and
        exposure from the metadata, lens shading corrected (frames in physical order), Bayer
        frames demosaiced with OpenCV, sRGB encoded."""
        return render_rgb8(self.data, self.metadata, physical_order=not self.protected)

    def save(self, path: str | os.PathLike) -> Path:
        """An .npz (privcam-frame/2) holding `data` and the metadata as JSON, written atomically."""
        return FRAME_FILE.save(path, {"data": self.data, "metadata": self.metadata})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Frame:
        """A frame saved by Frame.save; anything else is a FileFormatError naming the file."""
        payload = FRAME_FILE.load(path)
        return cls._checked(payload.get("data"), payload["metadata"], str(path))

    def to_sample(self) -> dict[str, bytes]:
        """The frame as the files of a WebDataset sample: "npy" (the data, np.save) and "json" (the
        metadata, keys sorted). The same frame always gives the same bytes, so shards compare byte
        for byte."""
        buffer = io.BytesIO()
        np.save(buffer, self.data, allow_pickle=False)
        return {"npy": buffer.getvalue(), "json": json.dumps(self.metadata, sort_keys=True).encode()}

    @classmethod
    def from_sample(cls, sample: dict[str, bytes], origin: str) -> Frame:
        """A frame from a sample written by to_sample; `origin` (shard and sample key) names it in errors."""
        if not isinstance(sample.get("npy"), bytes) or not isinstance(sample.get("json"), bytes):
            raise ValueError(f"{origin}: a frame sample needs .npy and .json files, found {sorted(sample)}")
        try:
            data = np.load(io.BytesIO(sample["npy"]), allow_pickle=False)
            metadata = json.loads(sample["json"])
        except ValueError as err:
            raise ValueError(f"{origin}: not a frame sample ({err})") from None
        if not isinstance(metadata, dict):
            raise ValueError(f"{origin}: the frame's .json must hold an object, found {type(metadata).__name__}")
        return cls._checked(data, metadata, origin)

    @classmethod
    def _checked(cls, data: object, metadata: dict, origin: str) -> Frame:
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint16
            or data.ndim not in (2, 3)
            or list(data.shape) != metadata.get("shape")
        ):
            found = (
                "no data" if data is None else f"{getattr(data, 'dtype', type(data).__name__)} {list(np.shape(data))}"
            )
            raise ValueError(f"{origin}: data must be uint16 of shape {metadata.get('shape')}, got {found}")
        return cls(data, metadata)

    def save_png(self, path: str | os.PathLike) -> Path:
        """A 16-bit PNG of the raw data, as read out, scaled to the full 16-bit range for viewers."""
        return write_png(path, self.data.astype(np.uint16) << (16 - self.metadata["bit_depth"]))


def stack_frames(frames: list[Frame]) -> KeyedFrames:
    """Protected frames of one sensor and key as a KeyedFrames batch (network inputs, Frame.to_tensor),
    each with its nonce in the per-frame modes.

    Example:
        >>> keyed(stack_frames([sensor.capture_image(image, key=key) for image in images]))  # doctest: +SKIP
    """
    if not frames or not all(isinstance(f, Frame) and f.protected for f in frames):
        raise ValueError("stack_frames takes a non-empty list of protected Frames (captured with a key)")
    readouts = [f.readout for f in frames]
    streams = [dataclasses.replace(r, nonce=None) if r.per_frame else r for r in readouts]
    kinds = [(stream, f.metadata["key_fingerprint"], f.adc) for stream, f in zip(streams, frames, strict=True)]
    for index, kind in enumerate(kinds):
        if kind != kinds[0]:
            raise ValueError(
                f"the frames of a batch share their key, kind of readout and code format; frame {index} is in "
                f"{readouts[index]} with key {kind[1]}, frame 0 in {readouts[0]} with key {kinds[0][1]}"
            )
    stream = streams[0]
    return KeyedFrames(
        torch.stack([f.to_tensor() for f in frames]),
        stream,
        [r.nonce for r in readouts] if stream.per_frame else None,
        frames[0].metadata["key_fingerprint"],
        frames[0].adc,
    )
