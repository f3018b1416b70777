"""Frame: what the camera sends. Raw DN in readout order plus metadata (never the key)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..privacy import Key, readout_inverse_permutation, shuffle
from ..privacy.atomic import atomic_write

FRAME_FORMAT = "privcam-frame/1"
_BAYER_TO_RGB = {
    "rggb": cv2.COLOR_BayerRGGB2RGB,
    "bggr": cv2.COLOR_BayerBGGR2RGB,
    "grbg": cv2.COLOR_BayerGRBG2RGB,
    "gbrg": cv2.COLOR_BayerGBRG2RGB,
}


class FrameKeyError(ValueError):
    """A frame was revealed with a key other than the one it was captured with."""


@dataclass(frozen=True)
class Frame:
    """data: uint16 (H, W) or (H, W, C) in readout order; metadata: JSON-safe capture record."""

    data: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def protected(self) -> bool:
        return self.metadata.get("key_fingerprint") is not None

    @property
    def height(self) -> int:
        return self.data.shape[0]

    @property
    def width(self) -> int:
        return self.data.shape[1]

    def reveal(self, key: Key) -> Frame:
        """The frame in physical order, for whoever holds the key it was captured with."""
        if not self.protected:
            return self
        if key.fingerprint != self.metadata["key_fingerprint"]:
            raise FrameKeyError(
                f"this frame was captured with the key of fingerprint {self.metadata['key_fingerprint']}, "
                f"not with the key of fingerprint {key.fingerprint}"
            )
        meta = self.metadata
        inverse = readout_inverse_permutation(
            key, self.height, self.width, meta["readout_unit"], meta["readout_block"], meta["nonce"]
        )
        return Frame(shuffle(self.data, inverse), {**meta, "key_fingerprint": None, "revealed": True})

    def to_tensor(self, packed: bool = False) -> torch.Tensor:
        """Float32 (C, H, W) in readout order, black level removed and scaled so white is 1.

        packed=True turns a Bayer raw frame into its 4-channel packed form (4, H/2, W/2), one
        channel per position in the 2x2 cell; a protected frame needs quad (or even block) readout
        for that, since pixel readout scatters the cells.
        """
        black, white = self.metadata["black_level_dn"], 2 ** self.metadata["bit_depth"] - 1
        values = (self.data.astype(np.float32) - black) / (white - black)
        tensor = torch.from_numpy(values)
        tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()
        if not packed:
            return tensor
        if self.metadata["cfa"] == "none":
            raise ValueError("packed=True needs a Bayer frame (cfa rggb, bggr, grbg or gbrg)")
        if self.protected and self.metadata["readout_unit"] == "pixel":
            raise ValueError("packed=True needs quad or block readout: pixel readout scatters the 2x2 cells")
        return torch.nn.functional.pixel_unshuffle(tensor.unsqueeze(0), 2)[0]

    def to_rgb8(self) -> np.ndarray:
        """An 8-bit RGB view for people: Bayer frames demosaiced with OpenCV, black level removed."""
        black, white = self.metadata["black_level_dn"], 2 ** self.metadata["bit_depth"] - 1
        scaled = np.clip((self.data.astype(np.float32) - black) / (white - black), 0, 1)
        image = (scaled * 255 + 0.5).astype(np.uint8)
        cfa = self.metadata["cfa"]
        if cfa != "none":
            image = cv2.cvtColor(image, _BAYER_TO_RGB[cfa])
        elif image.ndim == 2 or image.shape[2] == 1:
            return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
        return _white_balance(image, self.metadata.get("qe"))

    def save(self, path: str | os.PathLike) -> Path:
        """An .npz holding `data` and the metadata as JSON, written atomically."""
        path = Path(path)
        buffer = io.BytesIO()
        np.savez(buffer, data=self.data, metadata=np.array(json.dumps({"format": FRAME_FORMAT, **self.metadata})))
        with atomic_write(path) as f:
            f.write(buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Frame:
        try:
            with np.load(path, allow_pickle=False) as archive:
                data, text = archive["data"], str(archive["metadata"])
        except FileNotFoundError:
            raise
        except Exception as err:
            raise ValueError(f"{path} is not a privcam frame (.npz with data and metadata): {err}") from None
        try:
            metadata = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: frame metadata is not valid JSON: {err}") from None
        if metadata.pop("format", None) != FRAME_FORMAT:
            raise ValueError(f"{path}: not a {FRAME_FORMAT} file")
        if data.dtype != np.uint16 or data.ndim not in (2, 3) or list(data.shape) != metadata.get("shape"):
            raise ValueError(
                f"{path}: data must be uint16 of shape {metadata.get('shape')}, got {data.dtype} {list(data.shape)}"
            )
        return cls(data, metadata)

    def save_png(self, path: str | os.PathLike) -> Path:
        """A 16-bit PNG of the raw data, as read out, scaled to the full 16-bit range for viewers."""
        return write_png(path, self.data.astype(np.uint16) << (16 - self.metadata["bit_depth"]))


def _white_balance(rgb: np.ndarray, qe: list[float] | None) -> np.ndarray:
    """Scale R, G, B by the filters' relative QE, as a camera's ISP would, so grey looks grey."""
    if not qe or len(qe) != 3:
        return rgb
    gains = max(qe) / np.asarray(qe, np.float32)
    return np.clip(rgb.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """An 8- or 16-bit PNG of an (H, W) or RGB (H, W, 3) image, written atomically."""
    path = Path(path)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path.name}")
    with atomic_write(path) as f:
        f.write(encoded.tobytes())
    return path
