"""EMVA 1288-style characterisation of a simulated sensor: the model's validation.

Flat fields over a light series and dark frames over an exposure series give, per colour plane,
the system gain K (photon transfer: temporal variance against mean, from frame-pair differences),
temporal dark noise and read noise, saturation capacity (the mean where the variance peaks),
dark current, DSNU (pixel and column parts) and PRNU. Each is checked against the configuration.

    python -m privcam.sensor.characterize --sensor PRESET_OR_YAML [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm
from tqdm import tqdm

from ..base.atomic import atomic_write
from ..base.images import subplots, write_figure
from .config import SensorConfig
from .pixels import bent_response, bent_response_slope
from .sensor import Sensor

QUANTISATION_VARIANCE_DN2 = 1 / 12
# Tolerances of the sensor issue's acceptance, relative to the configured value.
TOLERANCES = {
    "system_gain_dn_per_e": 0.02,
    "read_noise_e": 0.05,
    "saturation_e": 0.02,
    "dark_current_e_per_s": 0.10,
    "dsnu_e": 0.10,
    "column_noise_e": 0.10,
    "prnu": 0.10,
    "dcnu": 0.10,
    "linearity_error_pct": 0.10,
    "snr_max": 0.05,
    "dynamic_range_db": 0.05,
}
# Levels of the fine saturation sweep whose variances are averaged before taking the peak.
PEAK_SMOOTHING = 5
# Defect fractions are counts of a few photosites: their tolerance is three Poisson standard
# deviations of the expected count, and at least 10%.
DEFECT_QUANTITIES = ("hot_pixel_fraction", "dead_pixel_fraction")


@dataclass(frozen=True)
class Check:
    quantity: str
    plane: str
    measured: float
    expected: float
    tolerance: float

    @property
    def relative_error(self) -> float:
        return abs(self.measured - self.expected) / self.expected

    @property
    def passed(self) -> bool:
        return bool(self.relative_error <= self.tolerance)


@dataclass
class PlaneResult:
    plane: str
    system_gain_dn_per_e: float
    temporal_dark_noise_e: float
    read_noise_e: float
    row_noise_e: float
    saturation_e: float
    dark_current_e_per_s: float
    dsnu_e: float
    column_noise_e: float
    prnu: float
    dcnu: float
    hot_pixel_fraction: float
    dead_pixel_fraction: float
    linearity_error_pct: float
    snr_max: float
    dynamic_range_db: float
    threshold_photons: float  # absolute sensitivity threshold: the light that gives SNR 1


@dataclass
class Characterization:
    sensor: str
    config_hash: str
    planes: list[PlaneResult]
    photon_transfer: dict[str, dict[str, list[float]]]
    photon_levels: list[float]  # photons per pixel of the photon transfer series
    photosites: int  # photosites scanned for defects
    # per plane, for the report's plots: SNR per light level, the dark signal against exposure,
    # and histograms (bin edges, counts) of the DSNU and PRNU images
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def checks_against(self, config: SensorConfig) -> list[Check]:
        """Each measured quantity against what `config` says, with its tolerance."""
        return _checks(self.planes, config, np.asarray(self.photon_levels), self.photosites)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def table(self) -> str:
        lines = [f"{'quantity':<22} {'plane':<6} {'measured':>10} {'expected':>10} {'error':>7} {'limit':>6}  result"]
        for c in self.checks:
            lines.append(
                f"{c.quantity:<22} {c.plane:<6} {c.measured:10.4g} {c.expected:10.4g} "
                f"{c.relative_error:7.2%} {c.tolerance:6.0%}  {'pass' if c.passed else 'FAIL'}"
            )
        return "\n".join(lines)


def plane_names(config: SensorConfig) -> list[str]:
    """Names of the colour planes: the channels, or the four positions of a Bayer cell (G1, G2 apart)."""
    if config.cfa == "none":
        return ["Y"] if config.channels == 1 else ["R", "G", "B"]
    greens = iter(["G1", "G2"])
    return [next(greens) if letter == "G" else letter for letter in config.cfa.upper()]


def split_planes(data: np.ndarray, config: SensorConfig) -> list[np.ndarray]:
    """Float planes of one colour each: Bayer cells split 2x2, or the channels of a 3-channel frame."""
    values = data.astype(np.float64)
    if config.cfa != "none":
        return [values[dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]
    return [values] if values.ndim == 2 else [values[..., c] for c in range(values.shape[2])]


def plane_qe(config: SensorConfig) -> list[float]:
    if config.cfa != "none":
        index = {"R": 0, "G": 1, "B": 2}
        return [config.qe[index[ch]] for ch in config.cfa.upper()]
    return list(config.qe)


class _Bench:
    """Captures flat fields and dark frames with one sensor configuration (fixed patterns shared)."""

    def __init__(self, config: SensorConfig, size: int, seed: int) -> None:
        self.config, self.size, self.seed = config, size, seed
        self.channels = 3 if config.cfa != "none" else config.channels
        self._sensors: dict[float, Sensor] = {}
        self._index = 0

    def frames(self, photons: float, count: int, exposure_s: float | None = None) -> list[list[np.ndarray]]:
        """`count` frames of a flat field of `photons` per pixel during the exposure, split in planes."""
        exposure = self.config.exposure_s if exposure_s is None else exposure_s
        if exposure not in self._sensors:
            self._sensors[exposure] = Sensor(self.config.replace(exposure_s=exposure), self.seed)
        sensor = self._sensors[exposure]
        field = np.full((self.size, self.size, self.channels), photons / exposure, dtype=np.float32)
        out = []
        for _ in range(count):
            frame = sensor.capture_photons(field, frame_index=self._index)
            self._index += 1
            out.append(split_planes(frame.data, self.config))
        return out


def _pair_stats(frames: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per plane: mean and temporal variance (var of the difference of two frames, halved)."""
    a, b = frames
    mean = np.array([(pa.mean() + pb.mean()) / 2 for pa, pb in zip(a, b, strict=True)])
    var = np.array([np.var(pa - pb) / 2 for pa, pb in zip(a, b, strict=True)])
    return mean, var


def _row_variance(frames: list[list[np.ndarray]]) -> np.ndarray:
    """Per plane: temporal variance shared along rows, from the row means of a frame difference."""
    a, b = frames
    out = []
    for pa, pb in zip(a, b, strict=True):
        diff = pa - pb
        width = diff.shape[1]
        total, row_means = np.var(diff) / 2, np.var(diff.mean(axis=1)) / 2
        out.append(max((row_means - total / width) / (1 - 1 / width), 0.0))
    return np.array(out)


def _spatial_split(frames: list[list[np.ndarray]], temporal_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per plane: spatial variance of the averaged image split into pixel and column parts (EMVA 4.0)."""
    count = len(frames)
    pixel, column = [], []
    for p in range(len(frames[0])):
        average = np.mean([f[p] for f in frames], axis=0)
        height = average.shape[0]
        residual = temporal_var[p] / count
        total = np.var(average) - residual
        profile = np.var(average.mean(axis=0)) - residual / height
        pixel_var = max((total - profile) / (1 - 1 / height), 0.0)
        pixel.append(pixel_var)
        column.append(max(total - pixel_var, 0.0))
    return np.array(pixel), np.array(column)


def _refined_peak_mean(bench: _Bench, photon_levels: np.ndarray, peak: int, plane: int, dark_mean, dark_var) -> float:
    """Mean signal (DN above dark) where plane's temporal variance peaks, on a fine sweep around
    the coarse peak: the saturation point of EMVA 1288. The variances are smoothed over
    PEAK_SMOOTHING neighbouring levels first: the peak is flat, and the argmax of raw estimates
    wanders with their noise."""
    low, high = photon_levels[max(peak - 2, 0)], photon_levels[min(peak + 1, len(photon_levels) - 1)]
    stats = [_pair_stats(bench.frames(float(photons), 2)) for photons in np.linspace(low, high, 25)]
    means = np.array([mean[plane] for mean, _ in stats]) - dark_mean
    variances = np.array([var[plane] for _, var in stats])
    smoothed = np.convolve(variances, np.ones(PEAK_SMOOTHING) / PEAK_SMOOTHING, mode="valid")
    return float(means[int(np.argmax(smoothed)) + PEAK_SMOOTHING // 2])


def characterize(
    sensor: Sensor,
    out_dir: str | Path | None = None,
    size: int = 512,
    levels: int = 60,
    average: int = 32,
    progress: bool = True,
) -> Characterization:
    """Measure `sensor` EMVA 1288 style; with out_dir, write ptc.png and characterization.json there.

    As EMVA 1288 prescribes, the bare array is measured: without its lens (no shading, no blur)
    and unbinned."""
    config = sensor.config.replace(lens_shading_corner=1.0, f_number=None, binning=1)
    if size < 64 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 64, got {size}")
    bench = _Bench(config, size, sensor.seed)
    names, qe = plane_names(config), np.array(plane_qe(config))
    steps = tqdm(total=levels + 4, desc=f"characterising {config.name}", disable=not progress, unit="step")

    dark_mean, dark_var = _pair_stats(bench.frames(0.0, 2))
    dark_pair = bench.frames(0.0, 2)
    row_var = _row_variance(dark_pair)
    steps.update()

    top = 1.3 * config.saturation_e / qe.min()
    photon_levels = np.linspace(0, top, levels + 1)[1:]
    means, variances = [], []
    for photons in photon_levels:
        m, v = _pair_stats(bench.frames(float(photons), 2))
        means.append(m - dark_mean)
        variances.append(v - dark_var)
        steps.update()
    means, variances = np.array(means), np.array(variances)

    gain, saturation = [], []
    for p in range(len(names)):
        peak = int(np.argmax(variances[:, p]))
        linear = (means[:, p] > 0) & (means[:, p] <= 0.7 * means[peak, p])
        slope = np.polyfit(means[linear, p], variances[linear, p], 1)[0]
        gain.append(slope)
        saturation.append(_refined_peak_mean(bench, photon_levels, peak, p, dark_mean[p], dark_var[p]) / slope)
    gain = np.array(gain)
    steps.update()

    rate = config.mean_dark_current_e_per_s
    t_max = max(config.exposure_s, min(50.0 / rate, 60.0)) if rate > 0 else config.exposure_s
    exposures = np.linspace(config.exposure_s, t_max, 6)
    dark_levels = np.array(
        [np.mean([[p.mean() for p in f] for f in bench.frames(0.0, 4, float(t))], axis=0) for t in exposures]
    )
    dark_current = np.array([np.polyfit(exposures, dark_levels[:, p], 1)[0] for p in range(len(names))]) / gain
    steps.update()

    short = bench.frames(0.0, average)
    hot, dcnu = [np.zeros(np.shape(p), bool) for p in short[0]], np.zeros(len(names))
    if t_max > config.exposure_s:
        dcnu, hot = _dark_current_spread(
            short, bench.frames(0.0, average, float(t_max)), t_max - config.exposure_s, gain, config
        )
    short = _masked(short, hot)
    dsnu_var, column_var = _spatial_split(short, dark_var)
    dark_total = dsnu_var + column_var
    dark_images = [np.mean([f[p] for f in short], axis=0) for p in range(len(names))]
    prnu, dead, light_images = [], [], []
    for p in range(len(names)):
        photons = 0.5 * config.saturation_e / qe[p]
        light = bench.frames(float(photons), average)
        m50, v50 = _pair_stats(light[:2])
        signal = np.mean([f[p] for f in light], axis=0) - dark_mean[p]
        dead.append(signal < 0.5 * np.median(signal))  # no response to light
        light_images.append(np.where(dead[p] | hot[p], np.median(signal), signal) / np.median(signal))
        pixel50, column50 = _spatial_split(_masked([[f[p]] for f in light], [dead[p] | hot[p]]), v50[p : p + 1])
        spatial = pixel50[0] + column50[0] - dark_total[p]
        prnu.append(np.sqrt(max(spatial, 0.0)) / (m50[p] - dark_mean[p]))
    steps.update()
    steps.close()
    linearity = [_linearity_error(photon_levels, means[:, p], saturation[p] * gain[p]) for p in range(len(names))]
    photosites = sum(h.size for h in hot)

    temporal_dark_e2 = np.maximum(dark_var - QUANTISATION_VARIANCE_DN2, 0) / gain**2
    row_e2 = row_var / gain**2
    dark_shot_e2 = np.maximum(dark_current * config.exposure_s, 0)
    planes = [
        PlaneResult(
            plane=names[p],
            system_gain_dn_per_e=float(gain[p]),
            temporal_dark_noise_e=float(np.sqrt(temporal_dark_e2[p])),
            read_noise_e=float(np.sqrt(max(temporal_dark_e2[p] - row_e2[p] - dark_shot_e2[p], 0))),
            row_noise_e=float(np.sqrt(row_e2[p])),
            saturation_e=float(saturation[p]),
            dark_current_e_per_s=float(dark_current[p]),
            dsnu_e=float(np.sqrt(dsnu_var[p]) / gain[p]),
            column_noise_e=float(np.sqrt(column_var[p]) / gain[p]),
            prnu=float(prnu[p]),
            dcnu=float(dcnu[p]),
            hot_pixel_fraction=float(sum(h.sum() for h in hot) / photosites),
            dead_pixel_fraction=float(sum(d.sum() for d in dead) / photosites),
            linearity_error_pct=float(linearity[p]),
            snr_max=float(np.sqrt(saturation[p])),
            dynamic_range_db=float(20 * np.log10(saturation[p] / _threshold_e(temporal_dark_e2[p]))),
            threshold_photons=float(_threshold_e(temporal_dark_e2[p]) / qe[p]),
        )
        for p in range(len(names))
    ]
    result = Characterization(
        sensor=config.name,
        config_hash=config.config_hash,
        planes=planes,
        photon_transfer={
            names[p]: {"mean_dn": means[:, p].tolist(), "variance_dn2": variances[:, p].tolist()}
            for p in range(len(names))
        },
        photon_levels=photon_levels.tolist(),
        photosites=photosites,
        curves={
            names[p]: {
                "snr": (means[:, p] / np.sqrt(np.maximum(variances[:, p] + dark_var[p], 1e-12))).tolist(),
                "dark_exposures_s": exposures.tolist(),
                "dark_mean_dn": dark_levels[:, p].tolist(),
                "dsnu_hist": _histogram((dark_images[p] - dark_images[p].mean()) / gain[p]),
                "prnu_hist": _histogram(light_images[p] - 1),
            }
            for p in range(len(names))
        },
    )
    result.checks = result.checks_against(config)
    if out_dir is not None:
        _write(result, Path(out_dir))
    return result


def _checks(planes: list[PlaneResult], config: SensorConfig, photon_levels: np.ndarray, photosites: int) -> list[Check]:
    saturation = _model_saturation_e(config)
    expected = {
        "system_gain_dn_per_e": config.system_gain_dn_per_e,
        "read_noise_e": config.read_noise_e,
        "saturation_e": saturation,
        "dark_current_e_per_s": config.mean_dark_current_e_per_s,
        "dsnu_e": config.dsnu_e,
        "column_noise_e": config.column_noise_e,
        "prnu": config.prnu,
        "dcnu": config.dcnu,
        "hot_pixel_fraction": config.hot_pixel_fraction,
        "dead_pixel_fraction": config.dead_pixel_fraction,
        "snr_max": np.sqrt(saturation),
        "dynamic_range_db": 20 * np.log10(saturation / _threshold_e(_dark_noise_e2(config))),
    }
    tolerances = dict(TOLERANCES)
    for quantity in DEFECT_QUANTITIES:
        count = expected[quantity] * photosites
        tolerances[quantity] = max(0.10, 3 / np.sqrt(count)) if count else 0.0
    checks = [
        Check(quantity, plane.plane, getattr(plane, quantity), value, tolerances[quantity])
        for plane in planes
        for quantity, value in expected.items()
        if value > 0 and (quantity not in DEFECT_QUANTITIES or plane is planes[0])
    ]
    if config.nonlinearity > 0:
        model = _model_linearity_error(config, photon_levels, [p.saturation_e * p.system_gain_dn_per_e for p in planes])
        checks += [
            Check(
                "linearity_error_pct",
                plane.plane,
                plane.linearity_error_pct,
                model[i],
                TOLERANCES["linearity_error_pct"],
            )
            for i, plane in enumerate(planes)
        ]
    return checks


def _model_saturation_e(config: SensorConfig) -> float:
    """The saturation capacity EMVA 1288's definition gives for the configured model: the mean
    signal (e) where the plane's temporal variance peaks. Pixels do not all clip at once: PRNU
    spreads their gains and shot noise their signals, so the variance peaks a few percent below
    the full well. Per gain quantile, the clipped signal's mean and variance are those of a
    normal clipped at the full well (then at the ADC's top), through the response's bend."""
    gains = 1 + config.prnu * norm.ppf((np.arange(201) + 0.5) / 201)
    adc_top = (config.max_dn - config.black_level_dn) / config.system_gain_dn_per_e
    signal = np.linspace(0.8, 1.2, 801)[:, None] * config.full_well_e * gains[None, :]
    mean, var = _clipped(signal, np.sqrt(signal), config.full_well_e)
    slope = bent_response_slope(mean, config.full_well_e, config.nonlinearity)
    mean = bent_response(mean, config.full_well_e, config.nonlinearity)
    mean, var = _clipped(mean, np.sqrt(var) * slope, adc_top)
    plane_mean, plane_var = mean.mean(axis=1), var.mean(axis=1)
    return float(plane_mean[int(np.argmax(plane_var))])


def _clipped(mean: np.ndarray, sd: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of min(X, top) for X normal (mean, sd)."""
    alpha = (top - mean) / np.maximum(sd, 1e-12)
    below, density = norm.cdf(alpha), norm.pdf(alpha)
    first = mean * below - sd * density + top * (1 - below)
    second = (mean**2 + sd**2) * below - sd * (mean + top) * density + top**2 * (1 - below)
    return first, np.maximum(second - first**2, 0.0)


def _dark_noise_e2(config: SensorConfig) -> float:
    """The temporal dark noise variance the configuration gives (e^2): read, row, dark shot and
    quantisation noise."""
    dark_shot = config.mean_dark_current_e_per_s * config.exposure_s
    quantisation = QUANTISATION_VARIANCE_DN2 / config.system_gain_dn_per_e**2
    return config.read_noise_e**2 + config.row_noise_e**2 + dark_shot + quantisation


def _threshold_e(dark_noise_e2: float) -> float:
    """Signal (e) where the SNR is 1, with shot noise: mu^2 = mu + sigma_d^2 (EMVA 1288's
    absolute sensitivity threshold, times the QE)."""
    return (1 + np.sqrt(1 + 4 * dark_noise_e2)) / 2


def _histogram(values: np.ndarray, bins: int = 80) -> list[list[float]]:
    counts, edges = np.histogram(values, bins=bins)
    return [edges.tolist(), counts.tolist()]


def _masked(frames: list[list[np.ndarray]], masks: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Frames with the masked pixels of each plane set to that plane's median: defects are
    counted apart, not in the spatial non-uniformities."""
    if not any(m.any() for m in masks):
        return frames
    return [[np.where(m, np.median(p), p) for p, m in zip(f, masks, strict=True)] for f in frames]


def _dark_current_spread(short, long, span_s: float, gain: np.ndarray, config: SensorConfig):
    """Per plane: DCNU (relative std of the dark current, hot pixels left out) and the hot-pixel
    mask, from averaged dark frames `span_s` seconds apart; the temporal noise of the averages is
    taken out of the spatial variance."""
    dcnu, hot = [], []
    threshold = np.sqrt(max(config.hot_pixel_dark_factor, 10.0))  # between the normal and the hot photosites
    for p in range(len(gain)):
        a, b = np.mean([f[p] for f in short], axis=0), np.mean([f[p] for f in long], axis=0)
        noise = (np.var(long[0][p] - long[1][p]) + np.var(short[0][p] - short[1][p])) / 2 / len(long)
        rate = (b - a) / span_s / gain[p]
        hot_p = rate > threshold * np.median(rate)
        normal = rate[~hot_p]
        spatial = np.var(normal) - noise / (span_s * gain[p]) ** 2
        dcnu.append(np.sqrt(max(spatial, 0.0)) / normal.mean())
        hot.append(hot_p)
    return np.array(dcnu), hot


def _linearity_error(photons: np.ndarray, mean_dn: np.ndarray, saturation_dn: float) -> float:
    """EMVA 1288 linearity error (%): half the spread of the relative deviations from a straight
    line fitted to the mean signal against the light, between 5% and 95% of saturation."""
    inside = (mean_dn >= 0.05 * saturation_dn) & (mean_dn <= 0.95 * saturation_dn)
    slope, intercept = np.polyfit(photons[inside], mean_dn[inside], 1)
    fitted = slope * photons[inside] + intercept
    deviation = 100 * (mean_dn[inside] - fitted) / fitted
    return float((deviation.max() - deviation.min()) / 2)


def _model_linearity_error(config: SensorConfig, photons: np.ndarray, saturation_dn: list[float]) -> list[float]:
    """The linearity error the configured response gives, noise-free, per plane, over the same
    range (5-95% of each plane's measured saturation) as the measurement."""
    out = []
    for qe, top in zip(plane_qe(config), saturation_dn, strict=True):
        electrons = np.minimum(qe * photons, config.full_well_e)
        electrons = bent_response(electrons, config.full_well_e, config.nonlinearity)
        dn = np.minimum(electrons * config.system_gain_dn_per_e, config.max_dn - config.black_level_dn)
        out.append(_linearity_error(photons, dn, top))
    return out


def _write(result: Characterization, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    figure, axis = subplots(figsize=(7, 4.5))
    _plot_ptc(axis, result, markersize=3)
    axis.set_xlabel("mean signal above dark, mu_y - mu_y.dark (DN)")
    axis.set_ylabel("temporal variance above dark (DN^2)")
    axis.set_title(f"Photon transfer curve: {result.sensor} (lines: fitted K; dotted: saturation)")
    axis.legend(title="plane")
    write_figure(figure, out_dir / "ptc.png", dpi=120)
    _write_report(result, out_dir / "report.png")
    payload = {
        "sensor": result.sensor,
        "config_hash": result.config_hash,
        "passed": result.passed,
        "planes": [asdict(p) for p in result.planes],
        "checks": [{**asdict(c), "relative_error": c.relative_error, "passed": c.passed} for c in result.checks],
        "photon_transfer": result.photon_transfer,
        "photon_levels": result.photon_levels,
        "curves": result.curves,
    }
    with atomic_write(out_dir / "characterization.json", "w") as f:
        json.dump(payload, f, indent=2)


def _plot_ptc(axis: Any, result: Characterization, markersize: float) -> list[Any]:
    """Each plane's photon transfer points, its fitted K (line) and saturation (dotted); returns
    the planes' colours."""
    colours = []
    for plane in result.planes:
        curve = result.photon_transfer[plane.plane]
        points = axis.plot(curve["mean_dn"], curve["variance_dn2"], "o", markersize=markersize, label=plane.plane)
        colour = points[0].get_color()
        xs = np.linspace(0, max(curve["mean_dn"]), 50)
        axis.plot(xs, plane.system_gain_dn_per_e * xs, "-", color=colour, linewidth=0.8)
        axis.axvline(plane.saturation_e * plane.system_gain_dn_per_e, color=colour, linestyle=":", linewidth=0.8)
        colours.append(colour)
    return colours


def _write_report(result: Characterization, path: Path) -> None:
    """The datasheet's plots: SNR, linearity, dark signal against exposure, DSNU and PRNU histograms."""
    figure, axes = subplots(2, 3, figsize=(15, 8.5))
    photons = np.asarray(result.photon_levels)
    ptc, snr, linearity, dark, dsnu, prnu = axes.flat
    for plane, colour in zip(result.planes, _plot_ptc(ptc, result, markersize=2), strict=True):
        curve, extra = result.photon_transfer[plane.plane], result.curves[plane.plane]
        mean = np.asarray(curve["mean_dn"])
        unsaturated = mean < 0.98 * plane.saturation_e * plane.system_gain_dn_per_e  # clipped pixels have no noise
        snr.loglog(
            photons[unsaturated],
            np.asarray(extra["snr"])[unsaturated],
            "o",
            markersize=2,
            color=colour,
            label=plane.plane,
        )
        linearity.plot(
            photons, mean, "o", markersize=2, color=colour, label=f"{plane.plane}: LE {plane.linearity_error_pct:.2f}%"
        )
        dark.plot(extra["dark_exposures_s"], extra["dark_mean_dn"], "o-", markersize=3, color=colour, label=plane.plane)
        for axis, (edges, counts) in ((dsnu, extra["dsnu_hist"]), (prnu, extra["prnu_hist"])):
            axis.semilogy(
                (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2,
                np.maximum(counts, 0.5),
                "-",
                color=colour,
                label=plane.plane,
            )
    first = result.planes[0]
    snr.axhline(first.snr_max, color="grey", linestyle=":", linewidth=0.8)
    snr.axvline(first.threshold_photons, color="grey", linestyle="--", linewidth=0.8)
    titles = [
        (
            ptc,
            "photon transfer (lines: fitted K; dotted: saturation)",
            "mean above dark (DN)",
            "temporal variance (DN^2)",
        ),
        (
            snr,
            f"SNR (dotted: SNRmax {first.snr_max:.0f}; dashed: threshold; DR {first.dynamic_range_db:.1f} dB)",
            "photons per pixel",
            "SNR",
        ),
        (linearity, "linearity", "photons per pixel", "mean above dark (DN)"),
        (dark, f"dark signal (dark current {first.dark_current_e_per_s:.3g} e-/s)", "exposure (s)", "mean dark (DN)"),
        (dsnu, f"DSNU image (DSNU {first.dsnu_e:.2f} e-)", "offset (e-)", "pixels"),
        (prnu, f"PRNU image at 50% saturation (PRNU {100 * first.prnu:.2f}%)", "relative response - 1", "pixels"),
    ]
    for axis, title, x_label, y_label in titles:
        axis.set_title(title, fontsize=9)
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.legend(fontsize=7)
    figure.suptitle(f"EMVA 1288 report: {result.sensor} (values of plane {first.plane} in the titles)")
    write_figure(figure, path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    from .config import load_sensor

    parser = argparse.ArgumentParser(prog="python -m privcam.sensor.characterize", description=__doc__.splitlines()[0])
    parser.add_argument("--sensor", required=True, help="a sensor preset name, or a sensor YAML file")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/characterize/NAME)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = load_sensor(args.sensor)
    out = args.out or Path("runs/characterize") / config.name
    result = characterize(Sensor(config, seed=args.seed), out)
    print(result.table())
    verdict = "all checks passed" if result.passed else "SOME CHECKS FAILED"
    print(f"{verdict}; wrote {out / 'ptc.png'}, {out / 'report.png'} and {out / 'characterization.json'}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
