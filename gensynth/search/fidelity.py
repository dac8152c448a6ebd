"""Multi-fidelity training: successive halving over the training length, as stages of the loop.

``fidelity.rungs`` lists training lengths as multiples of ``training.epochs``
(``[1, 3, 9]``: 1×, 3× and 9× the default protocol's optimisation steps over the
same training images, each rung trained from the same seeded initialisation).
The ``train`` stage becomes one stage per rung: ``train``, ``train_x3``,
``train_x9``. After every rung but the last, the candidate's objective score at
that rung (NetScore with the rung's accuracy) meets :class:`Promotion`: it goes
on to the next rung only if it is among the top ``1 / reduction_factor`` of the
scores that every earlier candidate reached at that rung, as Optuna's
``SuccessiveHalvingPruner`` decides (asynchronous successive halving, Li et al.
2020: no waiting for a full rung). A candidate that is not promoted is recorded
as rejected at that rung, with its rank in the reason: its accuracy is not
comparable with the last rung's, so only last-rung candidates compete for best.

Determinism: with an ordered executor (the local one) a candidate is judged
only once every earlier candidate is recorded, so the peers are exactly the
candidates proposed before it, with one worker or two and after a resume; the
Ray executor judges at once against what has been recorded (asynchronous, as
ASHA). The budget still counts candidates that entered evaluation, at whatever
rung they stopped.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .record import CandidateRecord
from .stages import TrainStage

if TYPE_CHECKING:
    from ..space.space import SearchSpace
    from .config import SearchConfig


def rung_name(multiple: int, first: bool) -> str:
    """The stage name of a rung: ``train`` for the first, ``train_x<multiple>`` for the others."""
    return "train" if first else f"train_x{multiple}"


@dataclass(frozen=True)
class Promotion:
    """The promotion rule after one rung: the top ``1 / reduction_factor`` of the scores reached at stage ``rung`` go on."""

    rung: str
    reduction_factor: int

    def peers(self, records: Sequence[CandidateRecord]) -> list[float]:
        """The scores earlier candidates reached at this rung (failed ones have none)."""
        return [r.stages[self.rung]["score"] for r in records if "score" in r.stages.get(self.rung, {})]

    def decide(self, score: float, peers: Sequence[float]) -> str:
        """``""`` to promote a candidate scoring ``score`` among ``peers``, else why not.

        As Optuna's ``SuccessiveHalvingPruner``: with ``n`` scores at the rung
        (this one included), the best ``n // reduction_factor`` go on; while that
        is 0, only a score at least as good as every earlier one does.
        """
        competing = sorted([*peers, score], reverse=True)
        promoted = max(1, len(competing) // self.reduction_factor)
        bar = competing[promoted - 1]
        if score >= bar:
            return ""
        return (f"not promoted: score {score:.3f} ranks {competing.index(score) + 1} of {len(competing)} at this rung; "
                f"the top {promoted} (score >= {bar:.3f}) go on")


def rung_stages(config: SearchConfig, space: SearchSpace, threads: int) -> list[TrainStage]:
    """The ``train`` stage of ``config``: one stage per rung, each but the last with its promotion rule."""
    rungs = config.fidelity.rungs
    stages = []
    for i, multiple in enumerate(rungs):
        training = dataclasses.replace(config.training, epochs=config.training.epochs * multiple)
        stage = TrainStage(config, space, threads, name=rung_name(multiple, i == 0), training=training)
        if i + 1 < len(rungs):
            stage.promotion = Promotion(stage.name, config.fidelity.reduction_factor)
        stages.append(stage)
    return stages
