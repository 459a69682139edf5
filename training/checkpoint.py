"""Resumable training: the run's state after phase 1 and after every fine-tuning epoch, in one file.

2-core machines differ several-fold: run 10 trained in 29.4 minutes on one, while on another run 22's
fine-tuning epochs took 10-16 minutes each (docs/experiments.md), so a run may be stopped by a session limit or
a reboot. `python -m training.train ... --resume` then continues from the last finished epoch and ends with
the same model, weight for weight, as a run that was never stopped (tests/test_training_pipeline.py checks
this). That needs all of the run's state:

- every variable of the model, the dropout layer's random-seed state included (``model.variables``, which
  ``get_weights()`` leaves out);
- the optimizer's variables (step count and moment estimates), so the learning-rate schedule and AdamW
  carry on where they were;
- the running sums of the weight average, the history rows and the wall time spent so far.

The input pipeline's shuffling and augmentation draw a new stream each time Keras opens an iterator on
the dataset; `skip_epochs` replays those openings, so the resumed epochs see the same views.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.config import TrainConfig

CHECKPOINT_FILE = "training_checkpoint.npz"
# Without steps_per_epoch, Keras 3's fit opens two iterators on the dataset per epoch: one at the epoch's start
# and one, never read, when its batches run out. Each opening advances the shuffle and augmentation streams.
ITERATORS_PER_EPOCH = 2


@dataclass
class RunState:
    """What a run has done so far, besides its variables."""

    config: dict
    # The data folders the run trains on, as given: a resumed run must read the same images.
    sources: dict[str, str]
    # Fine-tuning epochs finished; 0 right after phase 1.
    fine_tune_epochs_done: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    averaged_epochs: int = 0


@dataclass
class Checkpoint:
    state: RunState
    arrays: dict[str, np.ndarray]

    def restore(self, prefix: str, variables: list) -> None:
        """Assign the arrays saved under ``prefix`` to ``variables``, in order.

        By position, not by name: Keras numbers auto-named objects per process (``seed_generator_1``,
        ``adam_w_2``), so names differ between a run and its resumption while the order does not.
        """
        saved = self.arrays_under(prefix)
        shapes = [tuple(variable.shape) for variable in variables]
        if [array.shape for array in saved] != shapes:
            raise ValueError(
                f"the checkpoint's {prefix.rstrip('/')} holds {len(saved)} arrays that do not fit this run's "
                f"{len(variables)} variables (was the architecture changed?)"
            )
        for variable, array in zip(variables, saved, strict=True):
            variable.assign(array)

    def arrays_under(self, prefix: str) -> list[np.ndarray]:
        count = sum(key.startswith(prefix) for key in self.arrays)
        return [self.arrays[f"{prefix}{index}"] for index in range(count)]


def save_checkpoint(
    path: Path,
    state: RunState,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | None = None,
    averaged_sums: list[np.ndarray] | None = None,
) -> None:
    """Write the run's state to ``path`` in one atomic replace, so a run killed mid-write keeps the previous one."""
    groups = {
        "model/": [keras.ops.convert_to_numpy(v) for v in model.variables],
        "optimizer/": [keras.ops.convert_to_numpy(v) for v in optimizer.variables] if optimizer else [],
        "average/": averaged_sums or [],
    }
    arrays = {f"{prefix}{index}": array for prefix, group in groups.items() for index, array in enumerate(group)}
    arrays["state"] = np.array(json.dumps(dataclasses.asdict(state)))
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)


def load_checkpoint(path: Path) -> Checkpoint:
    with np.load(path) as saved:
        arrays = {key: saved[key] for key in saved.files}
    state = RunState(**json.loads(str(arrays.pop("state"))))
    return Checkpoint(state, arrays)


def config_differences(saved: dict, config: TrainConfig) -> list[str]:
    """The options whose values differ between a checkpoint and this command, as 'name: saved -> now'."""
    current = dataclasses.asdict(config)
    return [f"{name}: {saved.get(name)!r} -> {value!r}" for name, value in current.items() if saved.get(name) != value]


def restore_optimizer(optimizer: keras.optimizers.Optimizer, model: keras.Model, checkpoint: Checkpoint) -> None:
    """Build the optimizer's slots for the trainable weights, then load their saved values."""
    optimizer.build(model.trainable_variables)
    checkpoint.restore("optimizer/", optimizer.variables)


def skip_epochs(dataset: tf.data.Dataset, epochs: int) -> None:
    """Advance the dataset's random streams past ``epochs`` epochs of Keras' fit, without reading an image."""
    for _ in range(epochs * ITERATORS_PER_EPOCH):
        iter(dataset)


class SaveEachEpoch(keras.callbacks.Callback):
    """Writes the checkpoint after every fine-tuning epoch (after the history and average callbacks ran)."""

    def __init__(self, path: Path, state: RunState, averager, elapsed_seconds) -> None:
        super().__init__()
        self.path, self.state, self.averager, self.elapsed_seconds = path, state, averager, elapsed_seconds

    def on_epoch_end(self, epoch, logs=None):
        self.state.fine_tune_epochs_done = epoch + 1
        self.state.seconds = self.elapsed_seconds()
        self.state.averaged_epochs = self.averager.count
        save_checkpoint(self.path, self.state, self.model, self.model.optimizer, self.averager.sums)
