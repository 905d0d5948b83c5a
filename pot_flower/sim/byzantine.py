"""Byzantine replicas: an honest replica whose outgoing effects are corrupted.

Wrapping the honest code keeps the attacker protocol-aware (it knows the view, the
sequence numbers and the digests in flight) while it lies in one of several ways.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from pot_flower.consensus.effects import (
    Broadcast,
    Effect,
    Send,
    SendToClient,
)
from pot_flower.consensus.messages import (
    Checkpoint,
    Commit,
    Committed,
    M,
    Message,
    MessageError,
    Prepare,
    PrePrepare,
    Reply,
    StateTransfer,
    ViewChange,
    Votes,
    batch_digest,
    decode_message,
    sha256,
)
from pot_flower.consensus.replica import Replica
from pot_flower.zk.signatures import SigningKey

#: The view in which colluders attack (its primary, replica 0, is one of them).
ATTACK_VIEW = 0


@dataclass(frozen=True)
class RawSend:
    """Send arbitrary bytes (garbage) to replica ``to``."""

    to: int
    data: bytes


class ByzantineReplica:
    """A replica running ``behaviour`` on top of honest protocol logic.

    Behaviours
    ----------
    silent
        Receives everything, sends nothing.
    equivocate
        As primary, sends one batch to half the backups and another to the rest,
        and commits to both; as backup, votes for whatever each peer would like.
    conflicting-votes
        Sends each peer a prepare/commit for a different (random or null) digest.
        A relaying primary forwards each vote bundle to a random half.
    garbage
        Mixes random bytes, truncations, corrupted signatures and replays of old
        messages into its traffic.
    wrong-results
        Replies to clients with forged results, checkpoints a wrong state digest
        and hides its prepared certificates in view-changes.
    collude
        The textbook attacks on PBFT's quorum rules, with every traitor steering
        the same honest victims while the network (which the adversary schedules
        before GST) keeps victims, one helper and the rest apart. A colluding
        primary proposes the null batch to the victims and the helper only;
        colluders vote only among victims and allies, relay the helper's prepares
        to the victims and hide their checkpoints, certificates and prepared sets.

        * f victims: they collect 2f prepares and 2f commits. A correct replica
          refuses to commit (2f + 1 needed); colluders then relay every
          view-change but the victims', so the next view never hears of it.
        * f + 1 victims: the batch really commits. The next view's quorum must
          include a victim's view-change, whose prepared certificate a correct
          new primary has to honour.
    """

    def __init__(
        self,
        inner: Replica,
        behaviour: str,
        key: SigningKey,
        rng: random.Random,
        victims: tuple[int, ...] = (),
        allies: frozenset[int] = frozenset(),
    ) -> None:
        self.inner = inner
        self.behaviour = behaviour
        self._victims = victims
        self._allies = allies
        honest = sorted(
            r
            for r in range(inner.config.n)
            if r not in allies and r not in victims and r != 1 % inner.config.n
        )
        # One helper makes victims' prepares reach 2f without preparing anyone else.
        self._helpers = tuple(honest[:1]) if len(victims) <= inner.config.f else ()
        # Only when the victims hold a real commit must their view-changes count.
        self._relay_victims = len(victims) > inner.config.f
        self._key = key
        self._rng = rng
        self._history: list[bytes] = []
        self._relayed: set[bytes] = set()
        self.id = inner.id

    # Same input surface as Replica.
    def start(self) -> list[Effect | RawSend]:
        return self._corrupt(self.inner.start())

    def receive(self, data: bytes) -> list[Effect | RawSend]:
        out = self._corrupt(self.inner.receive(data))
        if self.behaviour == "collude":
            out.extend(self._relay(data))
        return out

    def _relay(self, data: bytes) -> list[RawSend]:
        """Bridge the partition selectively; signed messages relay undetectably."""
        token = sha256(data)
        if token in self._relayed:
            return []  # once each, or two colluders would echo forever
        self._relayed.add(token)
        try:
            message = decode_message(data)
        except MessageError:
            return []
        sender = getattr(message, "sender", None)
        view = getattr(message, "view", getattr(message, "new_view", None))
        if view is None:
            return []  # status, checkpoints, certificates: keep the victims unheard
        if view == ATTACK_VIEW:
            if isinstance(message, Prepare) and sender in self._helpers:
                return [RawSend(to, data) for to in self._victims]
            return []
        if sender in self._victims and not self._relay_victims:
            return []
        return [RawSend(to, data) for to in self._others() if to != sender]

    def on_timer(self, name: str) -> list[Effect | RawSend]:
        return self._corrupt(self.inner.on_timer(name))

    # ---------------------------------------------------------------- lying
    def _others(self) -> list[int]:
        return [r for r in range(self.inner.config.n) if r != self.id]

    def _sign(self, message: M) -> M:
        return message.signed(self._key)

    def _corrupt(self, effects: list[Effect]) -> list[Effect | RawSend]:
        out: list[Effect | RawSend] = []
        for effect in effects:
            if not isinstance(effect, (Send, Broadcast, SendToClient)):
                out.append(effect)
            elif self.behaviour == "silent":
                continue
            elif isinstance(effect, SendToClient):
                out.append(self._client_effect(effect))
            else:
                targets = [effect.to] if isinstance(effect, Send) else self._others()
                out.extend(self._lie(effect.message, targets))
        return out

    def _client_effect(self, effect: SendToClient) -> Effect:
        message = effect.message
        lies = self.behaviour in ("wrong-results", "garbage")
        if lies and isinstance(message, Reply):
            forged = replace(message, result=sha256(b"forged"))
            return SendToClient(effect.client, self._sign(forged))
        return effect

    def _lie(self, message: Message, targets: list[int]) -> list[Effect | RawSend]:
        behaviour = self.behaviour
        if getattr(message, "sender", None) != self.id and behaviour != "garbage":
            return [Send(to, message) for to in targets]  # forwarding someone's words
        if behaviour == "equivocate" and isinstance(message, PrePrepare):
            return self._equivocate(message, targets)
        if behaviour in ("equivocate", "conflicting-votes") and isinstance(
            message, (Prepare, Commit)
        ):
            return [self._other_vote(message, to) for to in targets]
        if behaviour in ("equivocate", "conflicting-votes") and isinstance(
            message, Votes
        ):
            # A relaying primary that serves only some: they must catch up or
            # suspect it.
            return [Send(to, message) for to in targets if self._rng.random() < 0.5]
        if behaviour == "collude":
            steered = set(self._victims) | self._allies
            if getattr(message, "view", None) != ATTACK_VIEW:
                pass  # after the attack view, colluders help the others move on
            elif isinstance(message, PrePrepare):
                # The null batch: no honest primary would ever propose it there.
                null = self._sign(
                    replace(message, requests=(), digest=batch_digest(()))
                )
                vote = self._sign(Commit(null.view, null.seq, null.digest, self.id))
                chosen = steered | set(self._helpers)
                return [
                    Send(to, m) for to in targets if to in chosen for m in (null, vote)
                ]
            elif isinstance(message, (Prepare, Commit)):
                return [Send(to, message) for to in targets if to in steered]
            if isinstance(message, (Checkpoint, StateTransfer, Committed)):
                return []  # never help the others learn what the victims did
            if isinstance(message, ViewChange):
                # Claim nothing: validly signed, but hides checkpoint and certificates.
                empty = replace(message, stable_seq=0, checkpoint_proof=(), prepared=())
                message = self._sign(empty)
        if behaviour == "wrong-results":
            if isinstance(message, Checkpoint):
                message = self._sign(replace(message, state_digest=sha256(b"lie")))
            elif isinstance(message, ViewChange):
                message = self._sign(replace(message, prepared=()))
        if behaviour == "garbage":
            return [RawSend(to, self._garbage(message)) for to in targets]
        return [Send(to, message) for to in targets]

    def _equivocate(self, pp: PrePrepare, targets: list[int]) -> list[Effect | RawSend]:
        alt_requests = tuple(reversed(pp.requests)) if len(pp.requests) > 1 else ()
        alt = self._sign(
            replace(pp, requests=alt_requests, digest=batch_digest(alt_requests))
        )
        half = targets[: len(targets) // 2]
        out: list[Effect | RawSend] = []
        for to in targets:
            chosen = pp if to in half else alt
            out.append(Send(to, chosen))
            commit = Commit(chosen.view, chosen.seq, chosen.digest, self.id)
            out.append(Send(to, self._sign(commit)))
        return out

    def _other_vote(self, vote: Prepare | Commit, to: int) -> Effect:
        roll = self._rng.random()
        if roll < 0.4:
            return Send(to, vote)
        digest = batch_digest(()) if roll < 0.7 else sha256(self._rng.randbytes(8))
        return Send(to, self._sign(replace(vote, digest=digest)))

    def _garbage(self, message: Message) -> bytes:
        data = message.to_bytes()
        self._history.append(data)
        if len(self._history) > 64:
            self._history.pop(0)
        roll = self._rng.random()
        if roll < 0.25:
            return data  # sometimes the truth, to stay plausible
        if roll < 0.45:
            return self._rng.randbytes(self._rng.randint(0, 200))
        if roll < 0.6:
            return data[: self._rng.randint(0, max(0, len(data) - 1))]
        if roll < 0.8:
            flipped = bytearray(data)
            flipped[self._rng.randrange(len(flipped))] ^= 1 << self._rng.randrange(8)
            return bytes(flipped)
        return self._rng.choice(self._history)  # replay
