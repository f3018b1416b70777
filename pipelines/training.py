"""Training loop: SGD with a standard schedule, evaluation every epoch, checkpoints, resume, plots.

Runs as one process, or under `torchrun --nproc_per_node=N` (DistributedDataParallel over gloo):
each rank trains on its share of every epoch and rank 0 evaluates and writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..base.images import subplots, write_figure
from ..base.schema import ConfigError, differing_fields
from ..base.store import FileFormat, FileFormatError, set_aside
from .config import TrainParams

CHECKPOINT_FILE = FileFormat("checkpoint", 1)
Augment = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
log = logging.getLogger("privcam")


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float


def is_main_process() -> bool:
    """True outside torchrun, and on rank 0 under it: the process that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def distributed() -> tuple[int, int]:
    """(rank, world size); starts the gloo process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module, frames: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> tuple[float, float, torch.Tensor]:
    """(accuracy, mean cross-entropy, predictions) on frames (N, C, H, W).

    labels are (N,) class ids, or (N, H, W) for dense outputs, where accuracy is per pixel.
    """
    was_training = model.training
    model.eval()
    losses, predictions = [], []
    for start in range(0, len(frames), batch_size):
        logits = model(frames[start : start + batch_size])
        target = labels[start : start + batch_size]
        losses.append(F.cross_entropy(logits, target) * len(target))
        predictions.append(logits.argmax(1))
    model.train(was_training)
    predicted = torch.cat(predictions)
    return float((predicted == labels).float().mean()), float(torch.stack(losses).sum() / len(frames)), predicted


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    settings: TrainParams,
    out_dir: Path,
    meta: dict[str, Any],
    progress: bool = True,
    record: dict[str, Any] | None = None,
    augment: Augment | None = None,
    refuse_other_runs: bool = False,
) -> list[EpochResult]:
    """Train `model` in place; checkpoint.pt after every epoch (resumed when present and `meta` matches).

    `meta` identifies the run (key fingerprint, the captures' digests, model, code version);
    `record` (the run's config) is stored in the checkpoint as well. A checkpoint of another run
    (other meta or settings) is a ConfigError naming what differs with `refuse_other_runs` (a
    train task's folder), and is trained over afresh without (an attack's or a task's own cache).
    `augment(frames, targets)` changes each training batch; its random draws are seeded per epoch,
    so a resumed run sees the same batches as an uninterrupted one."""
    rank, world = distributed()
    out_dir = Path(out_dir)
    train_x, train_y = train
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        nesterov=True,
    )
    steps_per_epoch = max(1, len(train_x) // (settings.batch_size * world))
    scheduler = _scheduler(optimizer, settings, steps_per_epoch)
    history: list[EpochResult] = []
    start_epoch = 0
    checkpoint_path = out_dir / "checkpoint.pt"
    state = _load_checkpoint(checkpoint_path)
    if state is not None and refuse_other_runs:
        _check_same_run(checkpoint_path, state, meta, asdict(settings))
    if state is not None and state["meta"] == meta and state["settings"] == asdict(settings):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = [EpochResult(**h) for h in state["history"]]
        start_epoch = state["epoch"] + 1
    generator = torch.Generator().manual_seed(settings.seed)
    for _ in range(start_epoch):  # the same shuffles as an uninterrupted run
        torch.randperm(len(train_x), generator=generator)
    for epoch in range(start_epoch, settings.epochs):
        order = torch.randperm(len(train_x), generator=generator)[rank::world]
        torch.manual_seed(settings.seed * 1_000_003 + epoch * 1009 + rank)  # augmentation and dropout draws
        net.train()
        seen, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{settings.epochs}",
            disable=not progress or rank != 0,
            leave=False,
        )
        for step in bar:
            index = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            x, y = train_x[index], train_y[index]
            if augment is not None:
                x, y = augment(x, y)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(index)
            correct += (logits.argmax(1) == y).float().mean().item() * len(index)
            loss_sum += loss.item() * len(index)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        if world > 1:
            dist.barrier()
        if rank == 0:
            accuracy, test_loss, _ = evaluate(model, *test)
            history.append(EpochResult(epoch, loss_sum / seen, correct / seen, test_loss, accuracy))
            _save_checkpoint(checkpoint_path, model, optimizer, scheduler, epoch, history, settings, meta, record)
            plot_history(history, out_dir / "training.png")
            if progress:
                tqdm.write(
                    f"epoch {epoch + 1}/{settings.epochs}: train loss {loss_sum / seen:.4f}, test acc {accuracy:.4f}"
                )
        if world > 1:
            dist.barrier()
    return history


def _check_same_run(path: Path, state: dict, meta: dict, settings: dict) -> None:
    """Refuse to resume a checkpoint of another run, naming the fields that differ."""
    changed = differing_fields({**state["meta"], **state["settings"]}, {**meta, **settings})
    if changed:
        raise ConfigError(
            f"{path} belongs to another run ({', '.join(changed)} differ); set output.dir to another folder, "
            "or remove the folder to train this one from scratch"
        )


def _scheduler(optimizer: torch.optim.Optimizer, settings: TrainParams, steps_per_epoch: int):
    total = settings.epochs * steps_per_epoch
    if settings.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=total)
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(total * 0.5), int(total * 0.75)], gamma=0.1)


def _load_checkpoint(path: Path) -> dict | None:
    """The checkpoint to resume from; None when there is none. One that cannot be read is set
    aside (checkpoint.pt.corrupt, logged) and training starts from scratch."""
    if not path.exists():
        return None
    try:
        return CHECKPOINT_FILE.load(path)
    except FileFormatError as err:
        log.warning("training from scratch: %s; it was moved to %s", err, set_aside(path))
        return None


def _save_checkpoint(path: Path, model, optimizer, scheduler, epoch: int, history, settings, meta, record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": [asdict(h) for h in history],
        "settings": asdict(settings),
        "meta": meta,
        "config": record,
    }
    CHECKPOINT_FILE.save(path, state)


def plot_history(history: list[EpochResult], path: Path) -> None:
    epochs = [h.epoch + 1 for h in history]
    figure, (left, right) = subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [h.train_loss for h in history], "o-", label="train")
    left.plot(epochs, [h.test_loss for h in history], "o-", label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.plot(epochs, [h.train_accuracy for h in history], "o-", label="train")
    right.plot(epochs, [h.test_accuracy for h in history], "o-", label="test")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    write_figure(figure, path)
