"""Deliberately broken replicas: the checker must catch each of them.

A checker that never fails proves nothing. These variants break one rule of PBFT
each; running them under the simulator's fault mix must produce safety violations.
"""

from __future__ import annotations

from collections.abc import Sequence

from pot_flower.consensus.messages import PrePrepare, ViewChange
from pot_flower.consensus.replica import Replica


class CommitOnTwoF(Replica):
    """Treats 2f commit votes as a commit certificate (PBFT needs 2f + 1).

    With 2f votes, f of them may come from Byzantine replicas, so as few as f honest
    replicas hold the prepared certificate: a view-change quorum can miss all of
    them and reassign the sequence number.
    """

    def _commit_quorum(self) -> int:
        return self.config.quorum - 1


class SkipPreparedCertificates(Replica):
    """Ignores prepared certificates when building and checking a new view.

    The new primary restarts numbering after the latest stable checkpoint, so a
    request committed in the old view above it can be replaced by another one.
    """

    def _reissue_plan(
        self, view_changes: Sequence[ViewChange]
    ) -> tuple[int, list[tuple[int, PrePrepare | None]]]:
        return max(vc.stable_seq for vc in view_changes), []


MUTANTS: dict[str, type[Replica]] = {
    "commit-on-2f": CommitOnTwoF,
    "skip-prepared-certificates": SkipPreparedCertificates,
}
