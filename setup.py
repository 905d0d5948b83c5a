"""The one thing pyproject.toml cannot say yet (stably): the C extension.

``pot_flower.zk._msm`` is the Pedersen commitments' multi-scalar multiplication
(zk/_msm.c). It is optional: where it cannot be compiled, zk/pedersen.py falls
back to arkworks, which computes the same bytes about 4x slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pot_flower.zk._msm",
            sources=["zk/_msm.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
