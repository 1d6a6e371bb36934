"""Progress and stop hooks for long ml calls (training, embedding).

A caller (the Celery `train` worker, a benchmark) passes `TrainingHooks` to
`ml.training.train`; the classifier reports per embedding batch, the detector
per epoch (with its loss), and both ask `should_stop()` between batches. When it
answers True the call raises `TrainingCancelled` from the training thread itself,
at the next batch boundary, and leaves nothing behind (the staging artifact is
removed by `ml.training.train`).

    hooks = TrainingHooks(on_progress=lambda phase, step, total, loss: ..., should_stop=...)

`on_progress(phase, step, total, loss)`: phase "classifier" (step: photos embedded
of total, loss None) or "detector" (step: epochs done of total, loss: that epoch's
mean training loss). Hooks run on the training thread; a slow hook slows training,
so a hook that asks a database should throttle itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ProgressFn = Callable[[str, int, int, float | None], None]
StopFn = Callable[[], bool]


class TrainingCancelled(Exception):
    """`should_stop()` answered True: the training call stopped and kept nothing."""


@dataclass(frozen=True)
class TrainingHooks:
    on_progress: ProgressFn | None = None
    should_stop: StopFn | None = None

    def progress(self, phase: str, step: int, total: int, loss: float | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(phase, int(step), int(total), None if loss is None else float(loss))

    def check(self, where: str = "") -> None:
        """Raise TrainingCancelled when the caller asked to stop."""
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled(f"training stopped on request{f' ({where})' if where else ''}")

    def keras_callback(self, phase: str, epochs: int):
        """A Keras callback: stop check after every batch, progress after every epoch."""
        import keras

        hooks = self

        class Hooks(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                hooks.check(f"{phase}, epoch batch {batch + 1}")

            def on_epoch_end(self, epoch, logs=None):
                loss = (logs or {}).get("loss")
                hooks.progress(phase, epoch + 1, epochs, None if loss is None else float(loss))
                hooks.check(f"{phase}, after epoch {epoch + 1}")

        return Hooks()


NO_HOOKS = TrainingHooks()
