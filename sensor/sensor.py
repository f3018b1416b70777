"""The simulated sensor: scene radiance -> electrons -> noise -> ADC -> keyed readout (DESIGN.md order)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import secrets

import cv2
import numpy as np
import torch

from ..privacy import Key, Readout
from . import torch_chain
from .array import Region, cfa_channel_map, column_field, pattern_field, shading_field
from .config import SensorConfig, load_preset
from .frame import Frame
from .noise import pixel_electrons
from .pixels import electrons_to_dn

_REC709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer curve (IEC 61966-2-1): uint8 0..255 or float 0..1 -> linear float32 0..1."""
    if srgb.dtype == np.uint8:  # a table lookup; OpenCV's runs several times faster than numpy's
        return cv2.LUT(np.ascontiguousarray(srgb), _SRGB8_TO_LINEAR.reshape(1, 256)).reshape(srgb.shape)
    values = torch.from_numpy(np.ascontiguousarray(srgb, dtype=np.float32))
    linear = torch.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    return linear.numpy()


_SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)


class Sensor:
    """A sensor built from a SensorConfig. Fixed patterns come from `config.serial`, never from a key;
    temporal noise from `seed` and the frame index, so any frame can be captured again exactly.

    In the per-frame protection modes each keyed frame gets the nonce (nonce_prefix << 32) + frame
    index, the prefix random per Sensor unless given, and a Sensor refuses to use a nonce twice
    under one key: a repeated order and mask would let two frames be compared.
    A frame's timestamp is the wall clock, or with `epoch` (POSIX seconds) the simulated time
    epoch + frame index * exposure (frames back to back), so that captures repeat byte for byte.
    One Sensor captures one frame at a time (it reuses its buffers); use one per thread.

    Each pixel's charge and code come from numba kernels on the CPU (the fastest there), or with
    `device` (a torch device: "cuda", "cuda:1", "cpu") from torch_chain's tensor operations on that
    device, which give the same frame up to float rounding, and the keyed readout there too
    (Readout.read_out_tensor).
    """

    def __init__(
        self,
        config: SensorConfig,
        seed: int = 0,
        nonce_prefix: int | None = None,
        epoch: float | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(config, SensorConfig):
            raise TypeError(f"expected a SensorConfig, got {type(config).__name__}")
        self.config = config
        self.device = None if device is None else checked_device(device)
        self.seed = int(seed)
        self.epoch = None if epoch is None else float(epoch)
        self.nonce_prefix = secrets.randbits(64) if nonce_prefix is None else int(nonce_prefix)
        self._used_nonces: set[tuple[str, int]] = set()
        self.frame_index = 0
        self._patterns: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}
        self._buffers: dict[str, torch.Tensor] = {}
        self._buffers_shape: tuple[int, ...] | None = None

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, device: str | torch.device | None = None, **overrides) -> Sensor:
        config = load_preset(name)
        return cls(config.replace(**overrides) if overrides else config, seed, device=device)

    @property
    def input_channels(self) -> int:
        """Channels of the radiance a capture expects: 3 (RGB) for Bayer, else the sensor's channels."""
        return 3 if self.config.cfa != "none" else self.config.channels

    def capture_image(
        self, srgb: np.ndarray, key: Key | None = None, nonce: int | None = None, frame_index: int | None = None
    ) -> Frame:
        """Capture an sRGB image, linearised with the inverse sRGB curve and scaled so that white
        gives `white_photons` photons per pixel during the exposure.

        Args:
            srgb: (H, W, 3) or (H, W), uint8 0..255 or float 0..1.
            key: read the frame out in the keyed order of `config.readout`; None for physical order.
            nonce: the frame's nonce in the per-frame modes (default: (nonce_prefix << 32) + frame index).
            frame_index: seeds the temporal noise (default: the next index).

        Returns:
            A Frame whose metadata records its readout and key fingerprint.

        Example:
            >>> frame = Sensor.from_preset("generic_cmos").capture_image(image, key=key)  # doctest: +SKIP
            >>> frame.reveal(key).to_rgb8()  # doctest: +SKIP
        """
        if (
            not isinstance(srgb, np.ndarray)
            or srgb.ndim not in (2, 3)
            or (srgb.ndim == 3 and srgb.shape[2] not in (1, 3))
        ):
            raise ValueError(f"expected an sRGB image (H, W, 3) or (H, W), got {_describe(srgb)}")
        if np.issubdtype(srgb.dtype, np.floating):
            if not np.isfinite(srgb).all():
                raise ValueError("the image contains NaN or infinite values")
            if srgb.min() < 0 or srgb.max() > 1:
                raise ValueError(f"a float sRGB image must lie in [0, 1], got [{srgb.min():.3g}, {srgb.max():.3g}]")
        elif srgb.dtype != np.uint8:
            raise TypeError(f"an sRGB image must be uint8 (0..255) or float (0..1), got {srgb.dtype}")
        linear = srgb_to_linear(srgb)
        if linear.ndim == 2:
            linear = linear[..., None]
        channels = self.input_channels
        if linear.shape[2] == 3 and channels == 1:
            linear = (linear @ _REC709)[..., None]
        elif linear.shape[2] == 1 and channels == 3:
            linear = np.repeat(linear, 3, axis=2)
        photons_per_s = np.multiply(linear, self.config.white_photons / self.config.exposure_s, dtype=np.float32)
        self._check_frame_size(photons_per_s)
        return self._capture(photons_per_s, key, nonce, frame_index)

    def capture_photons(
        self,
        photons_per_s: np.ndarray,
        key: Key | None = None,
        nonce: int | None = None,
        frame_index: int | None = None,
    ) -> Frame:
        """Capture linear radiance.

        Args:
            photons_per_s: (H, W) or (H, W, C) photons per pixel per second, >= 0; C is the sensor's
                channel count, or 3 (R, G, B) for a Bayer sensor.
            key, nonce, frame_index: as for capture_image. With a key the frame comes out in keyed
                readout order; without one, in physical order (an ordinary camera).

        Returns:
            A Frame.
        """
        return self._capture(self._check_radiance(photons_per_s), key, nonce, frame_index)

    def _capture(self, radiance: np.ndarray, key: Key | None, nonce: int | None, frame_index: int | None) -> Frame:
        """Capture checked radiance (H, W, C) photons/pixel/s."""
        index = self.frame_index if frame_index is None else int(frame_index)
        readout = self.frame_readout(key, nonce, index)
        if readout is not None:
            readout.check_size(*radiance.shape[:2])
            if readout.per_frame:
                self._claim_nonce(key, readout.nonce)
        self.frame_index = index + 1
        dn = self._expose(radiance, index)
        if readout is not None:
            read_out = readout.read_out if self.device is None else readout.read_out_tensor
            dn = read_out(key, dn, self.config.bit_depth)
        if self.device is not None:
            dn = dn.to(torch.uint16).cpu().numpy()
        return Frame(dn, self._metadata(dn, key, readout, index))

    def _claim_nonce(self, key: Key, nonce: int) -> None:
        if (key.fingerprint, nonce) in self._used_nonces:
            raise ValueError(
                f"nonce {nonce} was already used by this sensor with the key of fingerprint {key.fingerprint}: "
                "a per-frame readout never reuses a nonce under a key (capture each frame index once, or "
                "give fresh nonces)"
            )
        self._used_nonces.add((key.fingerprint, nonce))

    def frame_readout(self, key: Key | None, nonce: int | None, frame_index: int) -> Readout | None:
        """The order frame `frame_index` is read out in (Readout.of_frame); None without a key."""
        if key is None:
            if nonce is not None:
                raise ValueError("a nonce orders a keyed readout; give the key too")
            return None
        return self.config.readout.of_frame(frame_index, nonce, self.nonce_prefix)

    def _check_radiance(self, photons_per_s: np.ndarray) -> np.ndarray:
        channels = self.input_channels
        if not isinstance(photons_per_s, np.ndarray):
            raise TypeError(
                f"radiance must be a numpy array (H, W) or (H, W, {channels}), got {_describe(photons_per_s)}"
            )
        radiance = photons_per_s[..., None] if photons_per_s.ndim == 2 else photons_per_s
        if radiance.ndim != 3 or radiance.shape[2] != channels:
            raise ValueError(
                f"radiance must be (H, W) or (H, W, {channels}) photons/pixel/s, got shape {photons_per_s.shape}"
            )
        if not np.issubdtype(radiance.dtype, np.number) or np.issubdtype(radiance.dtype, np.complexfloating):
            raise TypeError(f"radiance must be real numbers, got {radiance.dtype}")
        if np.issubdtype(radiance.dtype, np.floating) and not np.isfinite(radiance).all():
            raise ValueError("radiance contains NaN or infinite values")
        if radiance.min() < 0:
            raise ValueError("radiance must be >= 0 photons/pixel/s")
        self._check_frame_size(radiance)
        return radiance

    def _check_frame_size(self, radiance: np.ndarray) -> None:
        if self.config.cfa != "none" and (radiance.shape[0] % 2 or radiance.shape[1] % 2):
            raise ValueError(f"a Bayer sensor needs an even frame size, got {radiance.shape[0]}x{radiance.shape[1]}")
        self.region(radiance.shape[:2])

    def region(self, frame_hw: tuple[int, int]) -> Region:
        """The photosites of the array that a (H, W) frame reads (config.array_hw, roi_offset, binning)."""
        c = self.config
        return Region.of_frame(tuple(frame_hw), c.array_hw, c.roi_offset, c.binning)

    def _expose(self, radiance: np.ndarray, index: int) -> np.ndarray:
        """Electrons, noise and ADC in physical order; returns codes (H, W) or (H, W, C), uint16 in
        numpy, or on the sensor's device int32 in a torch tensor. After the
        mean signal, every pixel's charge (noise.pixel_electrons), then the response's bend, row and
        column noise and the ADC (pixels.electrons_to_dn): two parallel numba passes, or their torch
        forms (torch_chain) on the sensor's device.
        """
        c = self.config
        sigma_px = c.blur_sigma_photosites / c.binning
        if sigma_px > 0:  # the lens's blur acts on the optical image, before the colour filters
            blurred = cv2.GaussianBlur(
                np.asarray(radiance, np.float32), (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT
            )
            radiance = blurred.reshape(radiance.shape)
        scene = torch.from_numpy(np.ascontiguousarray(radiance, dtype=np.float32))  # may share the caller's memory
        if self.device is not None:
            scene = scene.to(self.device)
        if c.cfa != "none":
            scene = _mosaic(scene, c.cfa)
        patterns = self._fixed_patterns(scene.shape)
        # the pixels' normals and Poisson uniforms, the clipped pixels' read noise, the row noise
        seeds = [int(s) for s in np.random.SeedSequence(_frame_seed(self.seed, index)).generate_state(3, np.uint64)]

        # a binned pixel sums b*b photosites: their dark signal, full wells and read noise variances add up
        photosites = c.binning**2
        full_well_e, read_noise_e = c.full_well_e * photosites, c.read_noise_e * c.binning
        buffers = self._workspace(scene.shape) if self.device is None else None  # the numba kernels' outputs
        mean_e = torch.mul(scene, patterns["gain"], out=None if buffers is None else buffers["mean"])
        dark_e = c.dark_current_at_temperature_e_per_s * c.exposure_s
        if "dark" in patterns:  # each photosite's own dark current (DCNU, hot pixels), summed over the bin
            mean_e.add_(patterns["dark"], alpha=dark_e)
        else:
            mean_e.add_(dark_e * photosites)
        height, _, channels = scene.shape
        rows = torch.zeros(height, channels)
        if c.row_noise_e > 0:  # each of a pixel's b photosite rows adds b times its row's noise
            _standard_normal(rows, seeds[2]).mul_(c.row_noise_e * c.binning**1.5)
        adc = (full_well_e, c.nonlinearity, c.system_gain_dn_per_e, c.black_level_dn, c.max_dn)
        if self.device is None:
            electrons = pixel_electrons(
                mean_e, patterns["dsnu"], full_well_e, read_noise_e, (seeds[0], seeds[1]), buffers["electrons"]
            )
            out = electrons_to_dn(electrons.numpy(), rows.numpy(), patterns["columns"][0].numpy(), *adc)
        else:
            electrons = torch_chain.pixel_electrons(
                mean_e, patterns["dsnu"], full_well_e, read_noise_e, (seeds[0], seeds[1])
            )
            out = torch_chain.electrons_to_dn(electrons, rows.to(self.device), patterns["columns"][0], *adc)
        return out[..., 0] if out.shape[2] == 1 else out

    def _workspace(self, shape: torch.Size) -> dict[str, torch.Tensor]:
        """The numba kernels' float buffers, reused frame after frame: fresh large buffers cost page
        faults every frame."""
        if self._buffers_shape != tuple(shape):
            self._buffers = {name: torch.empty(shape) for name in ("mean", "electrons")}
            self._buffers_shape = tuple(shape)
        return self._buffers

    def _fixed_patterns(self, shape: torch.Size) -> dict[str, torch.Tensor]:
        """The frame's region of the array's fixed patterns (array.py), binned, per frame size:
        "gain" (PRNU, QE, exposure, lens shading; 0 at dead photosites), "dsnu" and "columns"
        offsets (electrons), and "dark", each pixel's dark current over the mean (DCNU, hot
        pixels), only when it varies."""
        key = tuple(shape)
        if key not in self._patterns:
            c = self.config
            height, width, channels = key
            region = self.region((height, width))
            gain = 1.0 + c.prnu * pattern_field(c.serial, "prnu", region, channels)
            if c.cfa != "none":  # no binning, and an even offset: the region starts on the pattern's phase
                gain *= np.asarray(c.qe, np.float32)[cfa_channel_map(c.cfa, height, width)][..., None]
            else:
                gain *= np.asarray(c.qe, np.float32)
            gain *= c.exposure_s
            if c.lens_shading_corner < 1:
                gain *= shading_field(c.array_hw, region, c.lens_shading_corner)
            patterns = {}
            # one uniform draw per photosite: below dead_pixel_fraction dead, in the top hot_pixel_fraction hot
            defects = pattern_field(c.serial, "defects", region, channels)
            gain[defects < c.dead_pixel_fraction] = 0.0
            if c.dcnu > 0 or c.hot_pixel_fraction > 0:
                spread = np.sqrt(np.log1p(c.dcnu**2))  # lognormal of mean 1 and relative std dcnu
                dark = np.exp(spread * pattern_field(c.serial, "dcnu", region, channels) - spread**2 / 2)
                dark[defects >= 1 - c.hot_pixel_fraction] *= c.hot_pixel_dark_factor
                patterns["dark"] = torch.from_numpy(region.bin(dark, "sum").astype(np.float32))
            columns = c.column_noise_e * column_field(c.serial, "columns", region, channels)
            if c.binning > 1:  # b photosite rows of each of the pixel's b columns
                columns = c.binning * columns.reshape(1, width, c.binning, channels).sum(2)
            patterns["gain"] = torch.from_numpy(region.bin(gain, "mean").astype(np.float32))
            patterns["dsnu"] = torch.from_numpy(
                region.bin(c.dsnu_e * pattern_field(c.serial, "dsnu", region, channels), "sum")
            )
            patterns["columns"] = torch.from_numpy(np.ascontiguousarray(columns, dtype=np.float32))
            if self.device is not None:
                patterns = {name: pattern.to(self.device) for name, pattern in patterns.items()}
            self._patterns[key] = patterns
        return self._patterns[key]

    def _timestamp(self, index: int) -> str:
        if self.epoch is None:
            moment = datetime.datetime.now(datetime.UTC)
        else:
            moment = datetime.datetime.fromtimestamp(self.epoch + index * self.config.exposure_s, datetime.UTC)
        return moment.isoformat(timespec="milliseconds")

    def _metadata(self, dn: np.ndarray, key: Key | None, readout: Readout | None, index: int) -> dict:
        c = self.config
        return {
            "key_fingerprint": None if key is None else key.fingerprint,
            "readout": None if readout is None else readout.to_dict(),
            "shape": list(dn.shape),
            "bit_depth": c.bit_depth,
            "black_level_dn": c.black_level_dn,
            "exposure_s": c.exposure_s,
            "analog_gain": c.analog_gain,
            "conversion_gain_dn_per_e": c.conversion_gain_dn_per_e,
            "cfa": c.cfa,
            "qe": list(c.qe),
            "preset": c.name,
            "config_hash": c.config_hash,
            "seed": self.seed,
            "region": list(dataclasses.astuple(self.region(dn.shape[:2]))),
            "array_hw": list(c.array_hw),
            "lens_shading_corner": c.lens_shading_corner,
            # DN above black of the scene's white (white_photons) in each colour: the ISP's white balance
            "white_dn": [c.white_photons * q * c.system_gain_dn_per_e for q in c.qe],
            "frame_index": index,
            "timestamp": self._timestamp(index),
        }


def _standard_normal(out: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), out=out)


def _mosaic(scene: torch.Tensor, cfa: str) -> torch.Tensor:
    """(H, W, 3) radiance -> (H, W, 1): each photosite keeps the channel of its colour filter."""
    height, width = scene.shape[:2]
    channel = torch.from_numpy(cfa_channel_map(cfa, height, width)).to(scene.device)
    return torch.gather(scene, 2, channel.unsqueeze(-1))


def checked_device(device: str | torch.device) -> torch.device:
    """A torch device a Sensor can capture on; an unknown or unavailable one is a ValueError."""
    try:
        checked = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown torch device {device!r}: expected e.g. 'cpu', 'cuda' or 'cuda:1'") from error
    if checked.type == "cuda" and (not torch.cuda.is_available() or (checked.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    if checked.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: a sensor captures on 'cpu' or 'cuda'")
    return checked


def _frame_seed(seed: int, index: int) -> int:
    digest = hashlib.blake2b(f"privcam-noise/{seed}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return type(value).__name__
