"""A PBFT replica (Castro & Liskov, OSDI '99 / TOCS '02) as a pure state machine.

Inputs: wire bytes (:meth:`Replica.receive`), decoded messages (:meth:`Replica.handle`)
and timer expiries (:meth:`Replica.on_timer`). Output: a list of effects (send,
persist, execute notifications, timers) that the driver carries out in order. No
sockets, clocks or threads live here, so the same code runs in the deterministic
simulator, inside a Flower ServerApp and in a validator daemon.

Protocol summary (n replicas, f = (n-1)//3 faulty, quorum q = 2f+1 for n = 3f+1):

* normal case: request -> pre-prepare (primary assigns a sequence number to a
  batch) -> prepare (backups) -> prepared = pre-prepare + q-1 prepares -> commit ->
  committed = prepared + q commits -> execute in sequence order -> reply;
* checkpoints every ``checkpoint_interval`` executions; q matching checkpoint
  messages make one stable, which moves the low watermark and garbage-collects;
* view change: a replica whose request timer expires (or that sees f+1 replicas
  ahead) sends a view-change with its stable checkpoint and prepared certificates;
  the new primary gathers q of them and issues a new-view whose pre-prepares every
  backup recomputes and checks, so a request committed in one view keeps its
  sequence number in every later one;
* catch-up: periodic status messages make peers forward commit certificates
  (q signed commits prove a request committed) or a certified state snapshot; a
  replica that executed something since its last status skips the next one;
* vote relay (``relay_votes``): backups send prepares and commits to the primary
  only, which relays each quorum in one ``Votes`` message whose votes keep their
  authors' signatures, so every rule above is checked on the same evidence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TypeVar, cast

from pot_flower.consensus.application import Application
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.durable import (
    META_KEY,
    NEW_VIEW_KEY,
    STABLE_KEY,
    DurableState,
    SlotRecord,
    encode_slot,
    meta_value,
    new_view_value,
    slot_key,
    stable_value,
)
from pot_flower.consensus.effects import (
    Broadcast,
    CancelTimer,
    Drop,
    Dropped,
    Effect,
    Executed,
    Persist,
    Send,
    SendToClient,
    SetTimer,
    StateRestored,
    ViewInstalled,
)
from pot_flower.consensus.messages import (
    Checkpoint,
    Commit,
    CommitCertificate,
    Committed,
    FetchState,
    M,
    Message,
    MessageError,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Reply,
    Request,
    StateTransfer,
    Status,
    Superseded,
    ViewChange,
    Vote,
    Votes,
    batch_digest,
    decode_message,
    sha256,
)
from pot_flower.consensus.quorum import in_window, is_checkpoint, primary
from pot_flower.encoding import DecodeError, Value, decode, encode
from pot_flower.zk.signatures import SigningKey, VerifyKey

REQUEST_TIMER = "request"
VIEW_CHANGE_TIMER = "view-change"
STATUS_TIMER = "status"

V = TypeVar("V", Prepare, Commit)

_SIG_CACHE_LIMIT = 20_000
_CHECKPOINTS_PER_SENDER = 4


class Slot:
    """Mutable protocol state of one sequence number."""

    __slots__ = ("commits", "committed", "pre_prepare", "prepared", "prepares", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        # Votes of the current view only; cleared on a view change.
        self.pre_prepare: PrePrepare | None = None
        self.prepares: dict[int, Prepare] = {}
        self.commits: dict[int, Commit] = {}
        # Survive view changes: highest-view prepared certificate, commit proof.
        self.prepared: PreparedCertificate | None = None
        self.committed: CommitCertificate | None = None

    def reset_view(self) -> None:
        """Forget votes of the view being left."""
        self.pre_prepare = None
        self.prepares.clear()
        self.commits.clear()

    def record(self) -> SlotRecord:
        """Immutable copy for persistence."""
        return SlotRecord(
            self.seq,
            self.pre_prepare,
            tuple(self.prepares[k] for k in sorted(self.prepares)),
            tuple(self.commits[k] for k in sorted(self.commits)),
            self.prepared,
            self.committed,
        )

    @classmethod
    def from_record(cls, rec: SlotRecord) -> Slot:
        """Inverse of :meth:`record`."""
        slot = cls(rec.seq)
        slot.pre_prepare = rec.pre_prepare
        slot.prepares = {p.sender: p for p in rec.prepares}
        slot.commits = {c.sender: c for c in rec.commits}
        slot.prepared = rec.prepared
        slot.committed = rec.committed
        return slot


def reissued_batches(
    view_changes: Sequence[ViewChange],
) -> tuple[int, list[tuple[int, PrePrepare | None]]]:
    """The new-view rule: what a new primary must re-propose, computed from V.

    Returns ``(min_s, [(seq, source)])`` for every seq in ``(min_s, max_s]``, where
    ``min_s`` is the latest stable checkpoint in V, ``source`` the pre-prepare of
    the highest-view prepared certificate for ``seq`` in V, or None for a gap to
    fill with the null request.
    """
    min_s = max(vc.stable_seq for vc in view_changes)
    best: dict[int, PrePrepare] = {}
    for vc in view_changes:
        for cert in vc.prepared:
            pp = cert.pre_prepare
            if pp.seq > min_s and (pp.seq not in best or pp.view > best[pp.seq].view):
                best[pp.seq] = pp
    max_s = max(best, default=min_s)
    return min_s, [(seq, best.get(seq)) for seq in range(min_s + 1, max_s + 1)]


class Replica:
    """One PBFT replica. See the module docstring for the protocol.

    Parameters
    ----------
    config : CommitteeConfig
        Committee membership and tuning, identical at every replica.
    replica_id : int
        This replica's index in ``config.replicas``.
    key : SigningKey
        This replica's private key (must match ``config.replicas[replica_id]``).
    app : Application
        The deterministic state machine to execute committed requests on.
    durable : DurableState | None (default: None)
        State persisted before a crash; None for a fresh replica.

    """

    def __init__(
        self,
        config: CommitteeConfig,
        replica_id: int,
        key: SigningKey,
        app: Application,
        durable: DurableState | None = None,
    ) -> None:
        if not 0 <= replica_id < config.n:
            raise ValueError(f"replica id {replica_id} not in committee of {config.n}")
        if key.verify_key != config.replicas[replica_id]:
            raise ValueError("signing key does not match the committee's public key")
        self.config = config
        self.id = replica_id
        self._key = key
        self.app = app
        self.view = 0
        self.in_view_change = False
        self.low = 0  # last stable checkpoint (low watermark)
        self.last_executed = 0
        self.stable_proof: tuple[Checkpoint, ...] = ()
        self._replies: dict[str, tuple[int, bytes]] = {}
        self.stable_snapshot = self._snapshot()
        self._slots: dict[int, Slot] = {}
        self._own_checkpoints: dict[int, bytes] = {}  # seq -> snapshot, above low
        self._checkpoints: dict[int, dict[int, Checkpoint]] = {}
        self._pending: dict[str, Request] = {}  # latest unexecuted request per client
        self._period = 0  # status periods so far (paces answers to repeats)
        self._answered: dict[str, int] = {}  # client -> period of its last repeat
        self._assigned: set[tuple[str, int]] = set()
        self._next_seq = 1
        self._latest_vc: dict[int, ViewChange] = {}  # highest view-change per sender
        self._new_view: NewView | None = None
        # The latest view installed, kept while changing view again: peers still
        # stuck in that view change may need it (not persisted; see _restore).
        self._installed: NewView | None = None
        self._sent_new_view = False
        self._vc_timer_armed = False
        self._request_timer_armed = False
        self._backoff = 0
        self._fetching: tuple[int, tuple[Checkpoint, ...]] | None = None
        self._status_mark = 0  # last_executed at the previous status period
        # Normal-case messages for the view being installed, which often overtake
        # its new-view message; replayed once the view is installed.
        self._early: list[PrePrepare | Prepare | Commit] = []
        self._verified: set[bytes] = set()
        self.dropped: Counter[Drop] = Counter()
        self._out: list[Effect] = []
        self._dirty = False
        # What the store holds, to write only what changed.
        self._saved_meta = b""
        self._saved_low: int | None = None
        self._saved_new_view: NewView | None = None
        self._saved_slots: dict[int, SlotRecord] = {}
        self._touched: set[int] = set()  # slots this step may have changed
        if durable is not None:
            self._restore(durable)
            self._saved_meta = meta_value(durable)
            self._saved_low = durable.stable_seq
            self._saved_new_view = durable.new_view
            self._saved_slots = {rec.seq: rec for rec in durable.slots}
        self._status_mark = self.last_executed

    # ------------------------------------------------------------------ inputs
    @property
    def is_primary(self) -> bool:
        """Whether this replica leads the current view."""
        return primary(self.view, self.config.n) == self.id

    def start(self) -> list[Effect]:
        """Arm timers (and resend a pending view-change) after boot or restart."""
        self._begin()
        self._out.append(SetTimer(STATUS_TIMER, self.config.status_interval_ms))
        if self.in_view_change:
            self._broadcast(self._build_view_change())
            self._on_view_change_quorum()
        return self._finish()

    def receive(self, data: bytes) -> list[Effect]:
        """Handle wire bytes from the network (anything at all)."""
        try:
            message = decode_message(data)
        except MessageError as exc:
            self.dropped[Drop.MALFORMED] += 1
            return [Dropped(Drop.MALFORMED, f"malformed message: {exc}")]
        return self.handle(message)

    def handle(self, message: Message) -> list[Effect]:
        """Handle a decoded message; its signature is verified here."""
        self._begin()
        if isinstance(message, Request):
            self._on_request(message)
        else:
            sender = getattr(message, "sender", None)
            if not isinstance(sender, int) or not 0 <= sender < self.config.n:
                self._drop(
                    Drop.NOT_A_MEMBER, "sender is not a committee member", sender
                )
            elif sender == self.id:
                self._drop(
                    Drop.IMPERSONATION, "message claims to be from this replica", sender
                )
            elif not self._verify(message, self.config.replicas[sender]):
                self._drop(Drop.BAD_SIGNATURE, "bad signature", sender)
            else:
                self._dispatch(message)
        return self._finish()

    def on_timer(self, name: str) -> list[Effect]:
        """Handle the expiry of timer ``name``."""
        self._begin()
        if name == STATUS_TIMER:
            self._on_status_timer()
        elif name == REQUEST_TIMER:
            self._request_timer_armed = False
            if not self.in_view_change and self._pending:
                self._start_view_change(self.view + 1)
        elif name == VIEW_CHANGE_TIMER:
            self._vc_timer_armed = False
            if self.in_view_change:
                self._backoff += 1
                self._start_view_change(self.view + 1)
        return self._finish()

    def durable_state(self, *, slots: bool = True) -> DurableState:
        """Everything needed to rebuild this replica after a crash."""
        return DurableState(
            replica_id=self.id,
            view=self.view,
            in_view_change=self.in_view_change,
            stable_seq=self.low,
            stable_proof=self.stable_proof,
            stable_snapshot=self.stable_snapshot,
            last_executed=self.last_executed,
            slots=tuple(self._slots[s].record() for s in sorted(self._slots))
            if slots
            else (),
            new_view=self._new_view,
        )

    def state_digest(self) -> bytes:
        """Digest of the replicated state (application and reply table) right now."""
        return sha256(self._snapshot())

    # --------------------------------------------------------------- plumbing
    def _begin(self) -> None:
        self._out = []
        self._dirty = False

    def _finish(self) -> list[Effect]:
        out = self._out
        if self._dirty:
            writes = self._changed_records()
            if writes:
                # Persist first: nothing below may be said and then forgotten.
                out.insert(0, Persist(writes))
            self._touched.clear()
        self._out = []
        return out

    def _changed_records(self) -> dict[str, bytes | None]:
        state = self.durable_state(slots=False)
        first = self._saved_low is None
        writes: dict[str, bytes | None] = {}
        meta = meta_value(state)
        if meta != self._saved_meta:
            writes[META_KEY] = self._saved_meta = meta
        if self.low != self._saved_low:
            writes[STABLE_KEY] = stable_value(state)
            self._saved_low = self.low
        if first or state.new_view is not self._saved_new_view:
            writes[NEW_VIEW_KEY] = new_view_value(state)
            self._saved_new_view = state.new_view
        for seq in sorted(self._touched):
            slot = self._slots.get(seq)
            if slot is None:
                continue
            record = slot.record()
            if self._saved_slots.get(seq) != record:
                writes[slot_key(seq)] = encode_slot(record)
                self._saved_slots[seq] = record
        for seq in [s for s in self._saved_slots if s not in self._slots]:
            writes[slot_key(seq)] = None
            del self._saved_slots[seq]
        return writes

    def _drop(self, reason: Drop, detail: str, sender: int | str | None = None) -> None:
        self.dropped[reason] += 1
        self._out.append(Dropped(reason, detail, sender))

    def _broadcast(self, message: Message) -> None:
        self._out.append(Broadcast(message))

    def _send(self, to: int, message: Message) -> None:
        self._out.append(Send(to, message))

    def _sign(self, message: M) -> M:
        return message.signed(self._key)

    def _cast(self, vote: Prepare | Commit) -> None:
        """Send our vote to everyone, or to the primary that relays votes."""
        if self.config.relay_votes:
            self._send(primary(vote.view, self.config.n), vote)
        else:
            self._broadcast(vote)

    def _relay(self, prepares: Sequence[Vote], commits: Sequence[Vote]) -> None:
        # Certificates hold their votes as the base type; these are of the kind named.
        bundle = Votes(
            tuple(cast(Prepare, v) for v in prepares),
            tuple(cast(Commit, v) for v in commits),
            self.id,
        )
        self._broadcast(self._sign(bundle))

    def _verify(self, message: Message, key: VerifyKey) -> bool:
        token = message.payload_digest() + message.signature
        if token in self._verified:
            return True
        if not message.verify(key):
            return False
        if len(self._verified) >= _SIG_CACHE_LIMIT:
            self._verified.clear()
        self._verified.add(token)
        return True

    def _valid_request(self, request: Request) -> bool:
        key = self.config.clients.get(request.client)
        return key is not None and self._verify(request, key)

    def _valid_from_replica(self, message: Message, sender: int) -> bool:
        return 0 <= sender < self.config.n and self._verify(
            message, self.config.replicas[sender]
        )

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, PrePrepare):
            self._on_pre_prepare(message)
        elif isinstance(message, Prepare):
            self._on_prepare(message)
        elif isinstance(message, Commit):
            self._on_commit(message)
        elif isinstance(message, Checkpoint):
            self._on_checkpoint(message)
        elif isinstance(message, ViewChange):
            self._on_view_change(message)
        elif isinstance(message, NewView):
            self._on_new_view(message)
        elif isinstance(message, Status):
            self._on_status(message)
        elif isinstance(message, Votes):
            self._on_votes(message)
        elif isinstance(message, Committed):
            self._on_committed(message)
        elif isinstance(message, FetchState):
            self._on_fetch_state(message)
        elif isinstance(message, StateTransfer):
            self._on_state_transfer(message)
        else:
            self._drop(Drop.UNEXPECTED, f"unexpected {message.TAG} message")

    def _slot(self, seq: int) -> Slot:
        self._touched.add(seq)
        slot = self._slots.get(seq)
        if slot is None:
            slot = self._slots[seq] = Slot(seq)
        return slot

    def _in_window(self, seq: int) -> bool:
        return in_window(seq, self.low, self.config.window)

    # ------------------------------------------------------------- requests
    def _on_request(self, request: Request) -> None:
        if not self._valid_request(request):
            self._drop(
                Drop.BAD_REQUEST,
                "request from unknown client or with bad signature",
                request.client,
            )
            return
        last = self._replies.get(request.client)
        if last is not None and request.timestamp <= last[0]:
            if request.timestamp < last[0]:
                self._drop(
                    Drop.STALE_REQUEST, "stale request timestamp", request.client
                )
            if not self._may_answer_again(request.client):
                return  # a replay flood gets one answer per status period
            if request.timestamp == last[0]:  # retransmission: resend the reply
                self._reply(request.client, request.timestamp, last[1])
            else:
                # Timestamps only grow: a client still waiting for this one
                # shares its id with a client that got further. Tell it, signed.
                notice = Superseded(request.client, request.timestamp, last[0], self.id)
                self._out.append(SendToClient(request.client, self._sign(notice)))
            return
        self._learn(request)
        if self.is_primary and not self.in_view_change:
            self._propose()
        self._arm_request_timer()

    def _may_answer_again(self, client: str) -> bool:
        """Whether a repeated request of ``client`` gets an answer now.

        A retransmission is answered with the cached reply, a stale request with
        a superseded notice, each signed: once per client and status period, so
        that replaying a captured request cannot make replicas sign without end
        or flood the client's reply stream. Clients retransmit less often.
        """
        if self._answered.get(client) == self._period:
            return False
        self._answered[client] = self._period
        return True

    def _learn(self, request: Request) -> None:
        """Remember a not-yet-executed request (one per client, the newest)."""
        last = self._replies.get(request.client)
        if last is not None and request.timestamp <= last[0]:
            return
        current = self._pending.get(request.client)
        if current is None or current.timestamp < request.timestamp:
            self._pending[request.client] = request

    def _reply(self, client: str, timestamp: int, result: bytes) -> None:
        reply = Reply(self.view, client, timestamp, result, self.id)
        self._out.append(SendToClient(client, self._sign(reply)))

    def _propose(self) -> None:
        """Primary: assign sequence numbers to waiting requests, batching them."""
        cfg = self.config
        while True:
            waiting = [
                r
                for r in self._pending.values()
                if (r.client, r.timestamp) not in self._assigned
            ]
            in_flight = self._next_seq - 1 - self.last_executed
            if (
                not waiting
                or in_flight >= cfg.max_in_flight
                or not self._in_window(self._next_seq)
            ):
                return
            batch = tuple(waiting[: cfg.max_batch])
            seq = self._next_seq
            self._next_seq += 1
            pp = self._sign(
                PrePrepare(self.view, seq, batch_digest(batch), batch, self.id)
            )
            self._slot(seq).pre_prepare = pp
            self._assigned.update((r.client, r.timestamp) for r in batch)
            self._dirty = True
            self._broadcast(pp)
            self._check_prepared(self._slot(seq))

    def _arm_request_timer(self, restart: bool = False) -> None:
        if self.in_view_change:
            return
        if self._pending and (restart or not self._request_timer_armed):
            self._out.append(SetTimer(REQUEST_TIMER, self.config.request_timeout_ms))
            self._request_timer_armed = True
        elif not self._pending and self._request_timer_armed:
            self._out.append(CancelTimer(REQUEST_TIMER))
            self._request_timer_armed = False

    # ----------------------------------------------------------- normal case
    def _normal_case_check(self, view: int, seq: int) -> str | None:
        if self.in_view_change:
            return "in view change"
        if view != self.view:
            return f"for view {view}, not {self.view}"
        if not self._in_window(seq):
            high = self.low + self.config.window
            return f"seq {seq} outside watermarks ({self.low}, {high}]"
        return None

    def _buffer_early(self, message: PrePrepare | Prepare | Commit) -> bool:
        """Keep a message for the view we are changing to (bounded)."""
        if not (self.in_view_change and message.view == self.view):
            return False
        if len(self._early) < 3 * self.config.window * self.config.n:
            self._early.append(message)
        return True

    def _on_pre_prepare(self, pp: PrePrepare) -> None:
        if self._buffer_early(pp):
            return
        problem = self._normal_case_check(pp.view, pp.seq)
        if problem is None and pp.sender != primary(pp.view, self.config.n):
            problem = "pre-prepare not from the primary"
        if problem is None and not all(self._valid_request(r) for r in pp.requests):
            problem = "pre-prepare carries an invalid request"
        if problem is not None:
            self._drop(Drop.INVALID_PRE_PREPARE, f"pre-prepare: {problem}", pp.sender)
            return
        self._accept_pre_prepare(pp)

    def _accept_pre_prepare(self, pp: PrePrepare) -> None:
        slot = self._slot(pp.seq)
        if slot.pre_prepare is not None:
            if slot.pre_prepare.digest != pp.digest:
                self._drop(
                    Drop.EQUIVOCATION,
                    "conflicting pre-prepare (equivocating primary)",
                    pp.sender,
                )
            return
        slot.pre_prepare = pp
        self._dirty = True
        for request in pp.requests:
            self._learn(request)
        if not self.is_primary:
            prepare = self._sign(Prepare(pp.view, pp.seq, pp.digest, self.id))
            slot.prepares[self.id] = prepare
            self._cast(prepare)
        self._check_prepared(slot)
        self._arm_request_timer()

    def _on_prepare(self, prepare: Prepare) -> None:
        if self._buffer_early(prepare):
            return
        problem = self._normal_case_check(prepare.view, prepare.seq)
        if problem is None and prepare.sender == primary(prepare.view, self.config.n):
            problem = "the primary does not send prepares"
        if problem is not None:
            self._drop(Drop.INVALID_PREPARE, f"prepare: {problem}", prepare.sender)
            return
        slot = self._slot(prepare.seq)
        if self._add_vote(slot.prepares, prepare):
            self._check_prepared(slot)

    def _on_commit(self, commit: Commit) -> None:
        if self._buffer_early(commit):
            return
        problem = self._normal_case_check(commit.view, commit.seq)
        if problem is not None:
            self._drop(Drop.INVALID_COMMIT, f"commit: {problem}", commit.sender)
            return
        slot = self._slot(commit.seq)
        if self._add_vote(slot.commits, commit):
            self._check_committed(slot)

    def _on_votes(self, bundle: Votes) -> None:
        if max(len(bundle.prepares), len(bundle.commits)) > self.config.n:
            self._drop(
                Drop.OVERSIZED_BUNDLE,
                "vote bundle larger than the committee",
                bundle.sender,
            )
            return
        for prepare in bundle.prepares:
            if self._relayed_vote_ok(prepare, bundle.sender):
                self._on_prepare(prepare)
        for commit in bundle.commits:
            if self._relayed_vote_ok(commit, bundle.sender):
                self._on_commit(commit)

    def _relayed_vote_ok(self, vote: Prepare | Commit, relay: int) -> bool:
        if vote.sender == self.id:
            return False  # our own vote, relayed back
        if not self._valid_from_replica(vote, vote.sender):
            self._drop(
                Drop.FORGED_RELAY, f"relayed {vote.TAG} with a bad signature", relay
            )
            return False
        return True

    def _add_vote(self, votes: dict[int, V], vote: V) -> bool:
        existing = votes.get(vote.sender)
        if existing is not None:
            if existing.digest != vote.digest:
                self._drop(
                    Drop.EQUIVOCATION,
                    f"conflicting {vote.TAG} from the same replica",
                    vote.sender,
                )
            return False
        votes[vote.sender] = vote
        self._dirty = True
        return True

    def _check_prepared(self, slot: Slot) -> None:
        pp = slot.pre_prepare
        if pp is None:
            return
        if slot.prepared is None or slot.prepared.pre_prepare.view != self.view:
            matching = sorted(
                (p for p in slot.prepares.values() if p.digest == pp.digest),
                key=lambda p: p.sender,
            )
            if len(matching) < self.config.quorum - 1:
                return
            cert = PreparedCertificate(pp, tuple(matching[: self.config.quorum - 1]))
            slot.prepared = cert
            commit = self._sign(Commit(self.view, pp.seq, pp.digest, self.id))
            slot.commits[self.id] = commit
            self._dirty = True
            if self.config.relay_votes and self.is_primary:
                self._relay(cert.votes, (commit,))
            else:
                self._cast(commit)
        self._check_committed(slot)

    def _commit_quorum(self) -> int:
        return self.config.quorum

    def _check_committed(self, slot: Slot) -> None:
        if slot.committed is not None or slot.prepared is None:
            return
        pp = slot.prepared.pre_prepare
        if pp.view != self.view:
            return
        matching = sorted(
            (c for c in slot.commits.values() if c.digest == pp.digest),
            key=lambda c: c.sender,
        )
        if len(matching) < self._commit_quorum():
            return
        slot.committed = CommitCertificate(pp, tuple(matching[: self.config.quorum]))
        self._dirty = True
        if self.config.relay_votes and self.is_primary:
            self._relay((), slot.committed.votes)
        self._execute_ready()

    def _on_committed(self, message: Committed) -> None:
        cert = message.certificate
        pp = cert.pre_prepare
        if pp.seq <= self.last_executed:
            return
        if not self._in_window(pp.seq):
            self._drop(
                Drop.OUTSIDE_WATERMARKS,
                "commit certificate outside watermarks",
                message.sender,
            )
            return
        problem = self._certificate_problem(cert, self.config.quorum, pp.view + 1)
        if problem is not None:
            self._drop(
                Drop.INVALID_COMMIT_CERTIFICATE,
                f"commit certificate: {problem}",
                message.sender,
            )
            return
        slot = self._slot(pp.seq)
        if slot.committed is None:
            slot.committed = cert
            self._dirty = True
            self._execute_ready()

    def _certificate_problem(
        self,
        cert: PreparedCertificate | CommitCertificate,
        votes_needed: int,
        before_view: int,
    ) -> str | None:
        """Why a certificate is invalid, or None. Checks every signature in it."""
        pp = cert.pre_prepare
        if pp.view >= before_view:
            return "certificate from a view that is too new"
        if pp.sender != primary(pp.view, self.config.n):
            return "pre-prepare not from that view's primary"
        if not self._valid_from_replica(pp, pp.sender):
            return "bad pre-prepare signature"
        if not all(self._valid_request(r) for r in pp.requests):
            return "invalid request in batch"
        senders = set()
        for vote in cert.votes:
            if (vote.view, vote.seq, vote.digest) != (pp.view, pp.seq, pp.digest):
                return "vote does not match the pre-prepare"
            if isinstance(cert, PreparedCertificate) and vote.sender == pp.sender:
                return "primary's prepare in a prepared certificate"
            if vote.sender in senders:
                return "duplicate voter"
            if not self._valid_from_replica(vote, vote.sender):
                return "bad vote signature"
            senders.add(vote.sender)
        if len(senders) < votes_needed:
            return f"{len(senders)} votes, {votes_needed} needed"
        return None

    # -------------------------------------------------------------- execution
    def _execute_ready(self) -> None:
        while True:
            slot = self._slots.get(self.last_executed + 1)
            if slot is None or slot.committed is None:
                break
            self._execute(slot.committed.pre_prepare, replay=False)
        if self.is_primary and not self.in_view_change:
            self._propose()

    def _execute(self, pp: PrePrepare, *, replay: bool) -> None:
        results: list[bytes | None] = []
        executed_any = False
        for request in pp.requests:
            last = self._replies.get(request.client)
            if last is not None and request.timestamp <= last[0]:
                results.append(None)  # duplicate: executed once already
                continue
            result = self.app.execute(
                request.client, request.timestamp, request.operation, pp.seq
            )
            self._replies[request.client] = (request.timestamp, result)
            results.append(result)
            executed_any = True
            pending = self._pending.get(request.client)
            if pending is not None and pending.timestamp <= request.timestamp:
                del self._pending[request.client]
            if not replay:
                self._reply(request.client, request.timestamp, result)
        self.last_executed = pp.seq
        state_digest = None
        if is_checkpoint(pp.seq, self.config.checkpoint_interval):
            snapshot = self._snapshot()
            state_digest = sha256(snapshot)
            self._own_checkpoints[pp.seq] = snapshot
            if not replay:
                checkpoint = self._sign(Checkpoint(pp.seq, state_digest, self.id))
                self._broadcast(checkpoint)
                self._record_checkpoint(checkpoint)
        if replay:
            return
        self._dirty = True
        self._out.append(
            Executed(
                pp.seq, pp.view, pp.digest, pp.requests, tuple(results), state_digest
            )
        )
        if executed_any:
            self._backoff = 0
        self._assigned = {
            key
            for key in self._assigned
            if self._replies.get(key[0], (-1,))[0] < key[1]
        }
        self._arm_request_timer(restart=True)

    def _snapshot(self) -> bytes:
        table: list[Value] = [
            [c, ts, res] for c, (ts, res) in sorted(self._replies.items())
        ]
        return encode([self.app.snapshot(), table])

    def _load_snapshot(self, snapshot: bytes) -> None:
        value = decode(snapshot)
        if not (
            isinstance(value, list) and len(value) == 2 and isinstance(value[0], bytes)
        ):
            raise ValueError("bad replica snapshot")
        replies: dict[str, tuple[int, bytes]] = {}
        for row in value[1] if isinstance(value[1], list) else []:
            if not (isinstance(row, list) and len(row) == 3):
                raise ValueError("bad reply table")
            client, ts, result = row
            if not (
                isinstance(client, str)
                and type(ts) is int
                and isinstance(result, bytes)
            ):
                raise ValueError("bad reply table row")
            replies[client] = (ts, result)
        self.app.restore(value[0])
        self._replies = replies

    # ------------------------------------------------------------ checkpoints
    def _on_checkpoint(self, checkpoint: Checkpoint) -> None:
        if checkpoint.seq <= self.low:
            return
        self._record_checkpoint(checkpoint)

    def _record_checkpoint(self, checkpoint: Checkpoint) -> None:
        votes = self._checkpoints.setdefault(checkpoint.seq, {})
        if checkpoint.sender in votes:
            return
        votes[checkpoint.sender] = checkpoint
        # Bound memory against a flood: keep a few checkpoints per sender.
        mine = sorted(s for s, v in self._checkpoints.items() if checkpoint.sender in v)
        for seq in mine[:-_CHECKPOINTS_PER_SENDER]:
            del self._checkpoints[seq][checkpoint.sender]
        self._check_stable(checkpoint.seq)

    def _own_checkpoint_vote(self, seq: int) -> Checkpoint:
        """Our signed checkpoint for ``seq`` (whose snapshot we hold), to resend."""
        vote = self._checkpoints.get(seq, {}).get(self.id)
        if vote is not None:
            return vote
        # A restart replays executions without voting, and the per-sender bound
        # may have dropped it: sign it again (Ed25519 is deterministic, so it is
        # the same vote) and count it, as the live vote would have been.
        digest = sha256(self._own_checkpoints[seq])
        vote = self._sign(Checkpoint(seq, digest, self.id))
        self._checkpoints.setdefault(seq, {})[self.id] = vote
        return vote

    def _check_stable(self, seq: int) -> None:
        votes = self._checkpoints.get(seq, {})
        by_digest: dict[bytes, list[Checkpoint]] = {}
        for vote in votes.values():
            by_digest.setdefault(vote.state_digest, []).append(vote)
        for digest, group in by_digest.items():
            if len(group) < self.config.quorum:
                continue
            proof = tuple(sorted(group, key=lambda c: c.sender)[: self.config.quorum])
            own = self._own_checkpoints.get(seq)
            if seq > self.last_executed:
                self._start_fetch(seq, proof)  # lagging: fetch the certified state
            elif own is not None and sha256(own) == digest:
                self._make_stable(seq, proof, own)
            elif own is not None:
                self._drop(
                    Drop.DIVERGED_STATE,
                    "own state differs from a stable checkpoint (non-determinism)",
                )
            return

    def _make_stable(
        self, seq: int, proof: tuple[Checkpoint, ...], snapshot: bytes
    ) -> None:
        if seq <= self.low:
            return
        self.low = seq
        self.stable_proof = proof
        self.stable_snapshot = snapshot
        self._gc(seq)
        self._dirty = True
        if self.is_primary and not self.in_view_change:
            self._propose()

    def _gc(self, seq: int) -> None:
        self._slots = {s: v for s, v in self._slots.items() if s > seq}
        self._checkpoints = {s: v for s, v in self._checkpoints.items() if s > seq}
        self._own_checkpoints = {
            s: v for s, v in self._own_checkpoints.items() if s > seq
        }

    def _checkpoint_proof_problem(
        self, seq: int, proof: Sequence[Checkpoint], digest: bytes | None = None
    ) -> str | None:
        if seq == 0:
            return None if not proof else "proof for the initial state must be empty"
        if not proof:
            return "missing checkpoint proof"
        digest = proof[0].state_digest if digest is None else digest
        senders = set()
        for cp in proof:
            if cp.seq != seq or cp.state_digest != digest:
                return "checkpoint proof entries disagree"
            if cp.sender in senders:
                return "duplicate signer in checkpoint proof"
            if not self._valid_from_replica(cp, cp.sender):
                return "bad signature in checkpoint proof"
            senders.add(cp.sender)
        if len(senders) < self.config.quorum:
            return "checkpoint proof below quorum"
        return None

    # --------------------------------------------------------- state transfer
    def _start_fetch(self, seq: int, proof: tuple[Checkpoint, ...]) -> None:
        if self._fetching is not None and self._fetching[0] >= seq:
            return
        self._fetching = (seq, proof)
        self._request_state()

    def _request_state(self) -> None:
        if self._fetching is None:
            return
        seq, proof = self._fetching
        request = self._sign(FetchState(seq, self.id))
        for cp in proof:
            if cp.sender != self.id:
                self._send(cp.sender, request)

    def _on_fetch_state(self, message: FetchState) -> None:
        if self.low == 0 or self.low < message.seq:
            self._drop(
                Drop.NO_CHECKPOINT,
                "no stable checkpoint that recent to transfer",
                message.sender,
            )
            return
        transfer = StateTransfer(
            self.low, self.stable_snapshot, self.stable_proof, self.id
        )
        self._send(message.sender, self._sign(transfer))

    def _on_state_transfer(self, message: StateTransfer) -> None:
        if message.seq <= self.last_executed:
            return
        problem = self._checkpoint_proof_problem(
            message.seq, message.proof, sha256(message.snapshot)
        )
        if problem is not None:
            self._drop(
                Drop.INVALID_STATE_TRANSFER,
                f"state transfer: {problem}",
                message.sender,
            )
            return
        try:
            self._load_snapshot(message.snapshot)
        except (ValueError, DecodeError) as exc:
            self._drop(
                Drop.INVALID_STATE_TRANSFER,
                f"state transfer: unusable snapshot ({exc})",
                message.sender,
            )
            return
        self.last_executed = message.seq
        self.low = message.seq
        self.stable_proof = message.proof
        self.stable_snapshot = message.snapshot
        self._gc(message.seq)
        self._own_checkpoints.clear()
        if self._fetching is not None and self._fetching[0] <= message.seq:
            self._fetching = None
        for client in [
            c
            for c, r in self._pending.items()
            if self._replies.get(c, (-1,))[0] >= r.timestamp
        ]:
            del self._pending[client]
        self._dirty = True
        self._out.append(StateRestored(message.seq, sha256(message.snapshot)))
        self._next_seq = max(self._next_seq, self.last_executed + 1)
        self._execute_ready()
        self._arm_request_timer(restart=True)

    # -------------------------------------------------------- status / catch-up
    def _on_status_timer(self) -> None:
        self._period += 1
        self._out.append(SetTimer(STATUS_TIMER, self.config.status_interval_ms))
        self._request_state()
        progressed = self.last_executed > self._status_mark
        self._status_mark = self.last_executed
        if progressed and not self.in_view_change:
            # Executing keeps us current; a replica that stalls reports next time.
            # (n² status messages per period are a large share of an idle
            # committee's work.)
            return
        status = Status(
            self.view, self.in_view_change, self.low, self.last_executed, self.id
        )
        self._broadcast(self._sign(status))
        if self.in_view_change:
            own = self._latest_vc.get(self.id)
            if own is not None and own.new_view == self.view:
                self._broadcast(own)

    def _on_status(self, status: Status) -> None:
        peer = status.sender
        if self.low > 0 and status.last_executed < self.low:
            transfer = StateTransfer(
                self.low, self.stable_snapshot, self.stable_proof, self.id
            )
            self._send(peer, self._sign(transfer))
        elif status.stable_seq < self.low:
            # They executed it but missed the checkpoint votes: forward the proof
            # (each checkpoint is signed by its author) so their window can move.
            for checkpoint in self.stable_proof:
                if checkpoint.sender != peer:
                    self._send(peer, checkpoint)
        for seq in sorted(self._own_checkpoints):
            if seq > status.stable_seq:
                # Checkpoint votes go out once, at execution. With f replicas
                # silent a stable checkpoint needs every honest vote, so one lost
                # vote at every replica would leave the window full for good.
                self._send(peer, self._own_checkpoint_vote(seq))
        for seq in range(
            max(status.last_executed, self.low) + 1, self.last_executed + 1
        ):
            slot = self._slots.get(seq)
            if slot is not None and slot.committed is not None:
                self._send(peer, self._sign(Committed(slot.committed, self.id)))
        installed = self._installed
        if installed is not None and (
            status.view < installed.view
            or (status.view == installed.view and status.in_view_change)
        ):
            # Also while we are changing view again ourselves: a peer stuck in
            # the view change we completed may be the vote our next one needs.
            self._send(peer, installed)
        elif (
            not self.in_view_change
            and status.view == self.view
            and not status.in_view_change
        ):
            # Same view: resend what we said about slots they have not executed.
            for seq in sorted(self._slots):
                if seq <= status.last_executed or seq <= self.last_executed:
                    continue
                self._resend_slot(peer, self._slots[seq])

    def _resend_slot(self, peer: int, slot: Slot) -> None:
        """What we said about ``slot`` (relaying: every vote we hold for it)."""
        if slot.pre_prepare is not None and slot.pre_prepare.sender != peer:
            self._send(peer, slot.pre_prepare)
        if self.config.relay_votes:
            prepares = [v for k, v in sorted(slot.prepares.items()) if k != peer]
            commits = [v for k, v in sorted(slot.commits.items()) if k != peer]
            if prepares or commits:
                self._send(
                    peer, self._sign(Votes(tuple(prepares), tuple(commits), self.id))
                )
            return
        for vote in (slot.prepares.get(self.id), slot.commits.get(self.id)):
            if vote is not None and vote.sender != peer:
                self._send(peer, vote)

    # ------------------------------------------------------------ view change
    def _build_view_change(self) -> ViewChange:
        prepared = tuple(
            cert
            for s in sorted(self._slots)
            if s > self.low and (cert := self._slots[s].prepared) is not None
        )
        vc = ViewChange(self.view, self.low, self.stable_proof, prepared, self.id)
        signed = self._sign(vc)
        self._latest_vc[self.id] = signed
        return signed

    def _start_view_change(self, new_view: int) -> None:
        if new_view < self.view or (new_view == self.view and self.in_view_change):
            return
        self.view = new_view
        self.in_view_change = True
        self._new_view = None
        self._early = []
        self._sent_new_view = False
        for slot in self._slots.values():
            slot.reset_view()
        self._touched.update(self._slots)
        self._assigned.clear()
        if self._request_timer_armed:
            self._out.append(CancelTimer(REQUEST_TIMER))
            self._request_timer_armed = False
        if self._vc_timer_armed:
            self._out.append(CancelTimer(VIEW_CHANGE_TIMER))
            self._vc_timer_armed = False
        self._dirty = True
        self._broadcast(self._build_view_change())
        self._on_view_change_quorum()

    def _view_change_problem(self, vc: ViewChange) -> str | None:
        problem = self._checkpoint_proof_problem(vc.stable_seq, vc.checkpoint_proof)
        if problem is not None:
            return problem
        for cert in vc.prepared:
            if not in_window(cert.pre_prepare.seq, vc.stable_seq, self.config.window):
                return "prepared certificate outside the sender's watermarks"
            problem = self._certificate_problem(
                cert, self.config.quorum - 1, vc.new_view
            )
            if problem is not None:
                return f"prepared certificate: {problem}"
        return None

    def _on_view_change(self, vc: ViewChange) -> None:
        if vc.new_view < self.view or (
            vc.new_view == self.view and not self.in_view_change
        ):
            if self._new_view is not None and vc.new_view <= self.view:
                self._send(vc.sender, self._new_view)  # help a replica left behind
            return
        known = self._latest_vc.get(vc.sender)
        if known is not None and known.new_view >= vc.new_view:
            return
        problem = self._view_change_problem(vc)
        if problem is not None:
            self._drop(Drop.INVALID_VIEW_CHANGE, f"view-change: {problem}", vc.sender)
            return
        self._latest_vc[vc.sender] = vc
        # Liveness rule: f+1 replicas ahead means at least one honest one is.
        ahead = [
            v.new_view
            for s, v in self._latest_vc.items()
            if s != self.id and v.new_view > self.view
        ]
        if len(ahead) >= self.config.weak_quorum:
            self._start_view_change(min(ahead))
        self._on_view_change_quorum()

    def _on_view_change_quorum(self) -> None:
        if not self.in_view_change:
            return
        vcs = [vc for vc in self._latest_vc.values() if vc.new_view == self.view]
        # A quorum changing to this view or beyond arms the timer too: honest
        # replicas split between views (some timed out ahead, their votes for
        # this view lost) would otherwise each wait for votes that never come.
        at_least = sum(vc.new_view >= self.view for vc in self._latest_vc.values())
        if at_least >= self.config.quorum and not self._vc_timer_armed:
            factor = 2 ** min(self._backoff, self.config.max_backoff)
            self._out.append(
                SetTimer(VIEW_CHANGE_TIMER, self.config.view_change_timeout_ms * factor)
            )
            self._vc_timer_armed = True
        if len(vcs) < self.config.quorum:
            return
        if not self._vc_timer_armed:
            factor = 2 ** min(self._backoff, self.config.max_backoff)
            self._out.append(
                SetTimer(VIEW_CHANGE_TIMER, self.config.view_change_timeout_ms * factor)
            )
            self._vc_timer_armed = True
        if self.is_primary and not self._sent_new_view:
            chosen = sorted(vcs, key=lambda vc: (vc.sender != self.id, vc.sender))
            chosen = chosen[: self.config.quorum]
            _, plan = self._reissue_plan(chosen)
            pre_prepares = tuple(
                self._sign(self._reissue(seq, source)) for seq, source in plan
            )
            nv = NewView(
                self.view,
                tuple(sorted(chosen, key=lambda v: v.sender)),
                pre_prepares,
                self.id,
            )
            signed = self._sign(nv)
            self._sent_new_view = True
            self._broadcast(signed)
            self._install_new_view(signed)

    def _reissue_plan(
        self, view_changes: Sequence[ViewChange]
    ) -> tuple[int, list[tuple[int, PrePrepare | None]]]:
        return reissued_batches(view_changes)

    def _reissue(self, seq: int, source: PrePrepare | None) -> PrePrepare:
        requests = () if source is None else source.requests
        return PrePrepare(self.view, seq, batch_digest(requests), requests, self.id)

    def _on_new_view(self, nv: NewView) -> None:
        if nv.sender != primary(nv.view, self.config.n):
            self._drop(
                Drop.INVALID_NEW_VIEW, "new-view not from the new primary", nv.sender
            )
            return
        if nv.view < self.view or (nv.view == self.view and not self.in_view_change):
            return
        problem = self._new_view_problem(nv)
        if problem is not None:
            self._drop(Drop.INVALID_NEW_VIEW, f"new-view: {problem}", nv.sender)
            return
        self._install_new_view(nv)

    def _new_view_problem(self, nv: NewView) -> str | None:
        senders = {vc.sender for vc in nv.view_changes}
        if len(senders) != len(nv.view_changes) or len(senders) < self.config.quorum:
            return "needs a quorum of view-changes from distinct replicas"
        for vc in nv.view_changes:
            if vc.new_view != nv.view:
                return "view-change for another view"
            if not self._valid_from_replica(vc, vc.sender):
                return "bad view-change signature"
            problem = self._view_change_problem(vc)
            if problem is not None:
                return f"view-change from {vc.sender}: {problem}"
        _, plan = self._reissue_plan(nv.view_changes)
        if len(plan) != len(nv.pre_prepares):
            return "pre-prepares do not match the view-changes"
        for (seq, source), pp in zip(plan, nv.pre_prepares, strict=True):
            expected = self._reissue(seq, source)
            if (pp.view, pp.seq, pp.digest, pp.sender) != (
                nv.view,
                expected.seq,
                expected.digest,
                nv.sender,
            ):
                return f"pre-prepare for seq {seq} does not match the view-changes"
            if not self._valid_from_replica(pp, nv.sender):
                return "bad pre-prepare signature"
        return None

    def _install_new_view(self, nv: NewView) -> None:
        self.view = nv.view
        self.in_view_change = False
        self._new_view = self._installed = nv
        self._dirty = True
        if self._vc_timer_armed:
            self._out.append(CancelTimer(VIEW_CHANGE_TIMER))
            self._vc_timer_armed = False
        min_s, plan = self._reissue_plan(nv.view_changes)
        if min_s > self.low:
            source = next(vc for vc in nv.view_changes if vc.stable_seq == min_s)
            own = self._own_checkpoints.get(min_s)
            digest = source.checkpoint_proof[0].state_digest
            if (
                own is not None
                and sha256(own) == digest
                and min_s <= self.last_executed
            ):
                self._make_stable(min_s, source.checkpoint_proof, own)
            else:
                self._start_fetch(min_s, source.checkpoint_proof)
        for slot in self._slots.values():
            slot.reset_view()
        self._touched.update(self._slots)
        self._assigned = set()
        for pp in nv.pre_prepares:
            self._assigned.update((r.client, r.timestamp) for r in pp.requests)
            if self._in_window(pp.seq):
                self._accept_pre_prepare(pp)
        max_s = plan[-1][0] if plan else min_s
        self._next_seq = max(max_s, self.last_executed, self.low) + 1
        self._out.append(ViewInstalled(self.view))
        early, self._early = self._early, []
        for message in early:
            self._dispatch(message)
        self._execute_ready()
        self._arm_request_timer(restart=True)

    # ------------------------------------------------------------- recovery
    def _restore(self, state: DurableState) -> None:
        if state.replica_id != self.id:
            raise ValueError("persisted state belongs to another replica")
        self._load_snapshot(state.stable_snapshot)
        self.view = state.view
        self.in_view_change = state.in_view_change
        self.low = state.stable_seq
        self.stable_proof = state.stable_proof
        self.stable_snapshot = state.stable_snapshot
        self._new_view = self._installed = state.new_view
        self._slots = {rec.seq: Slot.from_record(rec) for rec in state.slots}
        self.last_executed = self.low
        for seq in range(self.low + 1, state.last_executed + 1):
            slot = self._slots.get(seq)
            if slot is None or slot.committed is None:
                raise ValueError(
                    f"persisted state lacks the commit proof for seq {seq}"
                )
            self._execute(slot.committed.pre_prepare, replay=True)
        proposed = [
            s for s, slot in self._slots.items() if slot.pre_prepare is not None
        ]
        self._next_seq = max([self.low, self.last_executed, *proposed]) + 1
        for slot in self._slots.values():
            if slot.pre_prepare is not None:
                self._assigned.update(
                    (r.client, r.timestamp) for r in slot.pre_prepare.requests
                )
