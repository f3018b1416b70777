"""The keyed forms of kornia's spatial augmentations, one KeyedForm per kornia class name
(forms.KEYED_FORMS lists them)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from kornia.constants import Resample

from ..privacy import shuffle
from . import filters, geometric
from .forms import KeyedAugmentationError, KeyedForm
from .run import Taps, run_shared
from .tables import KeyedTable, Order, keyed_filter_table


@lru_cache(maxsize=32)
def _keyed_correlation(
    order: Order, in_hw: tuple[int, int], kernel_hw: tuple[int, int], border: str, device: torch.device
) -> KeyedTable:
    return keyed_filter_table(order, in_hw, filters.correlation_index(in_hw, kernel_hw, border), device)


def _fill_colour(value: Any, channels: int) -> torch.Tensor | None:
    """A fill flag as a (1, C) float64 colour; None when it is black (padding reads zero)."""
    if value is None:
        return None
    colour = torch.as_tensor(value, dtype=torch.float64).flatten().cpu()
    if not bool(colour.any()):
        return None
    if colour.numel() not in (1, channels):
        raise ValueError(f"fill colour has {colour.numel()} values; expected 1 or {channels} (one per channel)")
    return colour.expand(channels).reshape(1, channels).clone()


def _resampling(aug: Any) -> None:
    if aug.flags["resample"] not in (Resample.BILINEAR, Resample.NEAREST):
        raise KeyedAugmentationError(f"{type(aug).__name__}: keyed forms resample with 'bilinear' or 'nearest'")


def _slice_cropping(aug: Any) -> None:
    if aug.flags["cropping_mode"] != "slice":
        raise KeyedAugmentationError(
            f"{type(aug).__name__} has a keyed form for cropping_mode='slice' (the default) only"
        )


def _crop_options(aug: Any) -> None:
    _slice_cropping(aug)
    _resampling(aug)


def _flip(axis: int) -> Callable:
    def taps(aug, params, shape, dtype):
        chosen = geometric.applied(params, shape[0], torch.device("cpu"))
        return geometric.flip_taps(chosen, (shape[-2], shape[-1]), axis)

    return taps


RandomHorizontalFlip = KeyedForm(taps=_flip(1))
RandomVerticalFlip = KeyedForm(taps=_flip(0))


def _random_crop(aug, params, shape, dtype) -> Taps:
    flags = aug.flags
    fill = _fill_colour(flags["fill"], shape[1]) if flags["padding_mode"] == "constant" else None
    taps = geometric.crop_taps(params, (shape[-2], shape[-1]), tuple(flags["size"]), flags["padding_mode"], fill)
    chosen = geometric.applied(params, shape[0], torch.device("cpu"))
    return geometric.keep_unchosen(taps, chosen, (shape[-2], shape[-1]), "RandomCrop")


def _random_resized_crop(aug, params, shape, dtype) -> Taps:
    flags = aug.flags
    if flags["resample"] == Resample.NEAREST:
        return geometric.probe_gather(aug, params, shape, dtype, None)
    taps = geometric.resized_crop_taps(params, tuple(flags["size"]), flags["align_corners"])
    chosen = geometric.applied(params, shape[0], torch.device("cpu"))
    return geometric.keep_unchosen(taps, chosen, (shape[-2], shape[-1]), "RandomResizedCrop")


RandomCrop = KeyedForm(taps=_random_crop, options=_slice_cropping)
RandomResizedCrop = KeyedForm(taps=_random_resized_crop, options=_crop_options)


def _warp(padding_of: Callable[[dict], str]) -> Callable:
    def taps(aug, params, shape, dtype):
        padding = padding_of(aug.flags)
        fill = _fill_colour(aug.flags.get("fill_value"), shape[1]) if padding == "fill" else None
        if aug.flags["resample"] == Resample.NEAREST:
            return geometric.probe_gather(aug, params, shape, dtype, fill)
        return geometric.warp_taps(aug, params, shape, padding, fill)

    return taps


RandomRotation = KeyedForm(taps=_warp(lambda flags: "zeros"), options=_resampling)
RandomPerspective = KeyedForm(taps=_warp(lambda flags: "zeros"), options=_resampling)
RandomAffine = KeyedForm(taps=_warp(lambda flags: flags["padding_mode"].name.lower()), options=_resampling)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _blend(params: dict, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    chosen = geometric.applied(params, x.shape[0], x.device)
    if bool(chosen.all()):  # p = 1: no 10 MB pass at batch 16, 224x224
        return out
    return torch.where(chosen.view(-1, 1, 1, 1), out, x)


def _filter(kernel_hw: Callable[[Any, dict], tuple[int, int]]) -> Callable:
    def frames(aug, x, params, order):
        kernel = filters.probe_kernel(aug, params, kernel_hw(aug, params), x.shape[0], x.dtype)
        border = aug.flags["border_type"].name.lower()
        out, in_hw = x, (x.shape[-2], x.shape[-1])
        for pass_hw, weight in filters.filter_passes(kernel):
            out = run_shared(out, _keyed_correlation(order, in_hw, pass_hw, border, x.device), weight)
        return _blend(params, out, x)

    return frames


def _motion_kernel_hw(aug: Any, params: dict) -> tuple[int, int]:
    size = aug._fixed_kernel_size
    if size is None:
        size = int(params["ksize_factor"][int(params["idx"][0])])
    return (size, size)


RandomGaussianBlur = KeyedForm(frames=_filter(lambda aug, p: _pair(aug.flags["kernel_size"])))
RandomBoxBlur = KeyedForm(frames=_filter(lambda aug, p: _pair(aug.flags["kernel_size"])))
RandomMotionBlur = KeyedForm(frames=_filter(_motion_kernel_hw))


@lru_cache(maxsize=8)
def _keyed_sharpness(order: Order, in_hw: tuple[int, int], device: torch.device) -> tuple[KeyedTable, torch.Tensor]:
    index, weight = filters.sharpness_taps(in_hw)
    perm = order.permutation(*in_hw)
    return keyed_filter_table(order, in_hw, index, device), torch.from_numpy(weight[perm]).unsqueeze(0).to(device)


def _random_sharpness(aug, x, params, order):
    """kornia's sharpness: clamp, smooth inside the frame, clamp, blend by the sampled factor."""
    x = x.clamp(0.0, 1.0)
    keyed, weight = _keyed_sharpness(order, (x.shape[-2], x.shape[-1]), x.device)
    smooth = run_shared(x, keyed, weight).clamp(0.0, 1.0)
    factor = params["sharpness"].to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    return _blend(params, (smooth + (x - smooth) * factor).clamp(0.0, 1.0), x)


def _random_gaussian_noise(aug, x, params, order):
    """The noise is drawn per scene position: the keyed form reads it in the frames' order."""
    perm = order.permutation(x.shape[-2], x.shape[-1])
    noise = params["gaussian_noise"].to(x.device)
    return aug(x, params={**params, "gaussian_noise": shuffle(noise, perm)})


RandomSharpness = KeyedForm(frames=_random_sharpness)
RandomGaussianNoise = KeyedForm(frames=_random_gaussian_noise)
