"""The PBFT client: sign a request, send it, accept f + 1 matching replies."""

from __future__ import annotations

from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.effects import (
    Broadcast,
    CancelTimer,
    Completed,
    Drop,
    Dropped,
    Effect,
    Rejected,
    Send,
    SetTimer,
)
from pot_flower.consensus.messages import (
    Message,
    MessageError,
    Reply,
    Request,
    Superseded,
    decode_message,
)
from pot_flower.consensus.quorum import primary
from pot_flower.zk.signatures import SigningKey

RETRANSMIT_TIMER = "retransmit"


class Requester:
    """A client with at most one outstanding request (closed loop, as in PBFT).

    A result is accepted only when f + 1 replicas sent the same result for the same
    timestamp: at least one of them is honest, so a lying minority cannot forge it.
    As in PBFT, a request goes to the primary of the latest view the client knows
    of, and to every replica when it must be retransmitted (so that backups suspect
    a primary that ignores it).

    Parameters
    ----------
    client_id : str
        The id the committee knows this client's key under.
    key : SigningKey
        The client's private key.
    config : CommitteeConfig
        The committee to talk to.
    first_timestamp : int (default: 1)
        Timestamps must grow across restarts; pass e.g. a clock reading.
    retransmit_ms : int (default: 500)
        First retransmission delay; doubles up to 8x.

    """

    def __init__(
        self,
        client_id: str,
        key: SigningKey,
        config: CommitteeConfig,
        *,
        first_timestamp: int = 1,
        retransmit_ms: int = 500,
    ) -> None:
        if config.clients.get(client_id) != key.verify_key:
            raise ValueError(f"client {client_id!r} is not registered with this key")
        self.id = client_id
        self.config = config
        self._key = key
        self._next_timestamp = first_timestamp
        self._retransmit_ms = retransmit_ms
        self._attempt = 0
        self.outstanding: Request | None = None
        self._replies: dict[int, bytes] = {}
        self._views: dict[int, int] = {}
        self._superseded: dict[int, int] = {}  # replica -> newer timestamp it saw
        #: Latest view that f + 1 replies vouched for (a liar cannot move it).
        self.view = 0

    @property
    def busy(self) -> bool:
        """Whether a request awaits its result."""
        return self.outstanding is not None

    def submit(self, operation: bytes) -> list[Effect]:
        """Sign and broadcast a new request."""
        if self.outstanding is not None:
            raise RuntimeError("a request is already outstanding")
        request = Request(self.id, self._next_timestamp, operation).signed(self._key)
        self._next_timestamp += 1
        self.outstanding = request
        self._replies = {}
        self._views = {}
        self._superseded = {}
        self._attempt = 0
        return [
            Send(primary(self.view, self.config.n), request),
            SetTimer(RETRANSMIT_TIMER, self._retransmit_ms),
        ]

    def abandon(self) -> list[Effect]:
        """Give up on the outstanding request (the caller timed out)."""
        self.outstanding = None
        self._replies = {}
        return [CancelTimer(RETRANSMIT_TIMER)]

    def receive(self, data: bytes) -> list[Effect]:
        """Handle wire bytes from a replica."""
        try:
            message = decode_message(data)
        except MessageError as exc:
            return [Dropped(Drop.MALFORMED, f"malformed reply: {exc}")]
        return self.handle(message)

    def handle(self, message: Message) -> list[Effect]:
        """Handle a decoded reply (or a notice that the request was superseded)."""
        if isinstance(message, Superseded):
            return self._on_superseded(message)
        if not isinstance(message, Reply):
            return [
                Dropped(
                    Drop.UNEXPECTED, f"requesters only take replies, got {message.TAG}"
                )
            ]
        request = self.outstanding
        if request is None or (message.client, message.timestamp) != (
            request.client,
            request.timestamp,
        ):
            return []  # late or foreign reply
        if not 0 <= message.sender < self.config.n or not message.verify(
            self.config.replicas[message.sender]
        ):
            return [
                Dropped(
                    Drop.BAD_SIGNATURE, "reply with a bad signature", message.sender
                )
            ]
        self._replies.setdefault(message.sender, message.result)
        self._views.setdefault(message.sender, message.view)
        matching = sum(1 for r in self._replies.values() if r == message.result)
        if matching < self.config.weak_quorum:
            return []
        self.outstanding = None
        views = sorted(self._views.values(), reverse=True)
        self.view = max(self.view, views[self.config.weak_quorum - 1])
        return [
            CancelTimer(RETRANSMIT_TIMER),
            Completed(request.timestamp, message.result),
        ]

    def _on_superseded(self, notice: Superseded) -> list[Effect]:
        request = self.outstanding
        if request is None or (notice.client, notice.timestamp) != (
            request.client,
            request.timestamp,
        ):
            return []
        if not 0 <= notice.sender < self.config.n or not notice.verify(
            self.config.replicas[notice.sender]
        ):
            return [
                Dropped(
                    Drop.BAD_SIGNATURE,
                    "superseded notice with a bad signature",
                    notice.sender,
                )
            ]
        self._superseded.setdefault(notice.sender, notice.executed)
        if len(self._superseded) < self.config.weak_quorum:
            return []  # f liars cannot make a client give up
        self.outstanding = None
        newer = sorted(self._superseded.values())[0]
        return [CancelTimer(RETRANSMIT_TIMER), Rejected(request.timestamp, newer)]

    def on_timer(self, name: str) -> list[Effect]:
        """Retransmit the outstanding request to every replica, backing off."""
        if name != RETRANSMIT_TIMER or self.outstanding is None:
            return []
        self._attempt += 1
        delay = self._retransmit_ms * 2 ** min(self._attempt, 3)
        return [Broadcast(self.outstanding), SetTimer(RETRANSMIT_TIMER, delay)]
