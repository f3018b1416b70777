"""Writes configs/data/pan.mp4, the sample video of configs/simulate_video.yaml.

A slow pan over scikit-image's astronaut picture, 48 frames of 160x120 at 12 fps (mp4v).
    python scripts/make_sample_video.py
"""

from pathlib import Path

import cv2
import skimage.data

OUT = Path(__file__).resolve().parents[1] / "configs" / "data" / "pan.mp4"


def main() -> None:
    picture = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(OUT), cv2.VideoWriter_fourcc(*"mp4v"), 12, (160, 120))
    for i in range(48):
        left = 4 * i
        crop = picture[100 + i : 340 + i, left : left + 320]
        writer.write(cv2.resize(crop, (160, 120), interpolation=cv2.INTER_AREA))
    writer.release()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
