"""Wrap an already-built ClientApp so it mines PoT, without editing its code."""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.client.mod import make_ffn
from flwr.clientapp import ClientApp

from pot_flower.clients.pot_mod import pot_mod


class PoTClientApp(ClientApp):
    """``inner`` with :func:`pot_mod` outermost; message dispatch unchanged.

    Point ``[tool.flwr.app.components].clientapp`` at an instance, e.g.
    ``app = PoTClientApp(existing_app)``.
    """

    def __init__(self, inner: ClientApp) -> None:
        super().__init__()
        self.inner = inner
        self._wrapped = make_ffn(inner, [pot_mod])

    def __call__(self, message: Message, context: Context) -> Message:
        return self._wrapped(message, context)


def with_pot(app: ClientApp) -> ClientApp:
    """Return ``app`` wrapped by :class:`PoTClientApp`."""
    return PoTClientApp(app)
