"""Multi-scalar multiplication over fixed BLS12-381 G1 generators (zk/_msm.c)."""

from typing_extensions import Buffer

def prepare(xy: Buffer, /) -> bytes:
    """Affine generators (96-byte big-endian x || y rows) in the form msm() reads."""

def msm(
    bases: Buffer, magnitudes: Buffer, negative: Buffer, limbs: int, /
) -> bytes | None:
    """sum((-1)^negative[i] * magnitude[i] * G_i) as 96-byte x || y; None: identity."""

def multiplier(name: str = ..., /) -> str:
    """The field multiplication in use ('adx' or 'portable'), switched if named."""
