"""Certificates a validator missed, fetched from its peers in the background.

The coordinator hands each block's certificate to every validator once, right after
the round; a validator that was down or still catching up at that moment misses it,
and only the next round's batch would bring it. A block that stays uncertified for
two passes is asked of the peers; a certificate is kept only if it certifies the
block this validator holds, under its chain's committee, and it is stored by the
replica's thread (the ledger's only writer).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent import futures

from pot_flower.protocol.certificate import Certificate, CertificateError, block_hash
from pot_flower.protocol.params import Params
from pot_flower.transport.fetch import PeerFetcher
from pot_flower.validator.chains import Chains
from pot_flower.validator.reads import uncertified

log = logging.getLogger("pot.validator")
PASS_S = 2.0
MAX_PER_PASS = 16  # blocks asked about per chain and pass


class CertificateRepair(threading.Thread):
    """Every :data:`PASS_S`, fetch certificates for blocks left uncertified."""

    def __init__(
        self,
        service: Chains,
        fetcher: PeerFetcher,
        store: Callable[[Callable[[], str]], futures.Future[str]],
        stopping: threading.Event,
    ) -> None:
        super().__init__(daemon=True, name="certificate-repair")
        self.service = service
        self.fetcher = fetcher
        self.store = store
        self.stopping = stopping
        self._seen: set[tuple[int, int]] = set()
        self.repaired = 0

    def run(self) -> None:
        while not self.stopping.wait(PASS_S):
            try:
                self.repair_once()
            except Exception as exc:  # a ledger mid-creation, a full disk: next pass
                log.debug("certificate repair pass skipped: %s", exc)

    def repair_once(self) -> None:
        seen: set[tuple[int, int]] = set()
        for run, chain in list(self.service.chains.items()):
            params = chain.state.params
            for height, digest in uncertified(
                self.service.directory / f"run-{run}", MAX_PER_PASS
            ):
                seen.add((run, height))
                if (run, height) not in self._seen:
                    continue  # give the coordinator's hand-over a moment first
                certificate = self._fetch(run, height, digest, params)
                if certificate is None:
                    continue
                done = self.store(
                    functools.partial(chain.offer_certificate, certificate)
                )
                if done.result(timeout=30) == "":
                    self.repaired += 1
                    log.info("run %d: certificate of block %d from a peer", run, height)
        self._seen = seen

    def _fetch(
        self, run: int, height: int, digest: bytes, params: Params
    ) -> Certificate | None:
        for copy in self.fetcher.copies(run, height, with_model=False):
            if not copy.certificate or block_hash(copy.body) != digest:
                continue
            try:
                certificate = Certificate.from_bytes(copy.certificate)
                if (certificate.height, certificate.block) != (height, digest):
                    continue
                certificate.verify(params.certifiers)
            except CertificateError:
                continue
            return certificate
        return None
