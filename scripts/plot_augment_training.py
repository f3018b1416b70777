"""Writes docs/augment_training_fashion_mnist.png: test accuracy per epoch of the keyed-augmentation
experiment (plain and keyed training, with and without crop + flip), read from the runs' history.json.

    python scripts/plot_augment_training.py [RUNS_DIR]

The four runs are made by the commands in configs/train_fashion_mnist_crop_flip.yaml.
"""

import json
import sys
from pathlib import Path

from privcam.base.images import subplots, write_figure

OUT = Path(__file__).resolve().parents[1] / "docs" / "augment_training_fashion_mnist.png"
RUNS = {
    "train_fashion_mnist_crop_flip": ("plain frames, plain model, crop + flip", "tab:blue", "-"),
    "train_fashion_mnist_crop_flip_keyed": ("protected frames, keyed model, keyed crop + flip", "tab:orange", "--"),
    "train_fashion_mnist_noaug": ("plain frames, plain model, no augmentation", "tab:green", "-"),
    "train_fashion_mnist_noaug_keyed": ("protected frames, keyed model, no augmentation", "tab:red", "--"),
}


def main() -> None:
    runs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs")
    figure, axis = subplots(figsize=(7, 4))
    for name, (label, colour, style) in RUNS.items():
        history = json.loads((runs / name / "history.json").read_text())
        epochs = [h["epoch"] + 1 for h in history]
        accuracy = [100 * h["test_accuracy"] for h in history]
        axis.plot(epochs, accuracy, style, color=colour, marker="o", label=f"{label}: {accuracy[-1]:.2f}%")
    axis.set_xlabel("epoch")
    axis.set_ylabel("test accuracy (%)")
    axis.set_ylim(top=95)
    axis.set_title("Fashion-MNIST, small CNN: keyed training with keyed augmentation")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    print(f"wrote {write_figure(figure, OUT)}")


if __name__ == "__main__":
    main()
