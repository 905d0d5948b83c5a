"""Keras models to and from Flower ArrayRecords, under names that stay put.

``ArrayRecord(model.get_weights())`` works with PoT (keys ``"0"``, ``"1"``...),
but the names say nothing, and Keras' own variable paths
(``sequential_3/conv2d_7/kernel``) change with how many models a process built
before, so they cannot be compared across miners. Here a weight is named by its
layer's position and class and its own name: ``"0.conv2d.kernel"``,
``"0.conv2d.bias"``, ``"4.dense.kernel"``... The same model definition gives the
same names in every process, which is what the committee checks updates against.

>>> record = keras_arrays(model)  # doctest: +SKIP
>>> load_keras_arrays(model, msg.content["arrays"])  # doctest: +SKIP

Nothing here imports TensorFlow or Keras: any object with Keras 3's ``layers``
and ``weights`` (``.name``, ``.shape``, ``.dtype``, ``.numpy()``, ``.assign()``)
works.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import numpy as np
from flwr.app import Array, ArrayRecord


class _Variable(Protocol):
    name: str

    def numpy(self) -> np.ndarray: ...

    def assign(self, value: np.ndarray) -> Any: ...


_UNNAMED = re.compile(r"variable(_\d+)?")  # add_weight() without a name


def _short(variable: Any, position: int) -> str:
    """A weight's own name; its position in its layer where Keras numbered it."""
    short = str(variable.name).rsplit("/", 1)[-1].split(":")[0]
    # Unnamed weights are numbered per process ("variable_7"): not stable.
    return str(position) if _UNNAMED.fullmatch(short) else short


def _variables(model: Any) -> list[tuple[str, _Variable]]:
    """``(stable name, variable)`` for every weight, in the model's order.

    A layer shared by nested models is sent once; weights the model owns itself
    (``add_weight`` on a subclassed ``keras.Model``) come last, as ``model.*``.
    """
    named: list[tuple[str, _Variable]] = []
    seen: set[int] = set()
    names: set[str] = set()

    def add(prefix: str, position: int, variable: Any) -> None:
        if id(variable) in seen:
            return
        name = f"{prefix}.{_short(variable, position)}"
        if name in names:  # a nested layer reusing a short name
            name = f"{prefix}.{position}.{_short(variable, position)}"
        seen.add(id(variable))
        names.add(name)
        named.append((name, variable))

    for index, layer in enumerate(model.layers):
        kind = type(layer).__name__.lower()
        for position, variable in enumerate(layer.weights):
            add(f"{index}.{kind}", position, variable)
    for position, variable in enumerate(v for v in model.weights if id(v) not in seen):
        add("model", position, variable)
    if not named:
        raise ValueError("the Keras model has no weights yet: build it first")
    return named


def _exportable(name: str, value: np.ndarray) -> np.ndarray:
    if value.dtype.kind not in "biuf":  # bfloat16 (ml_dtypes) and the like
        raise ValueError(
            f"{name}: {value.dtype} weights cannot travel in an ArrayRecord; keep "
            "variables in float32 (Keras' mixed precision policies do)"
        )
    return value


def keras_names(model: Any) -> list[str]:
    """The stable names :func:`keras_arrays` gives ``model``'s weights."""
    return [name for name, _ in _variables(model)]


def keras_arrays(model: Any) -> ArrayRecord:
    """``model``'s weights (trainable and not) as an ArrayRecord, stable names."""
    return ArrayRecord(
        {
            name: Array(_exportable(name, np.asarray(v.numpy())))
            for name, v in _variables(model)
        }
    )


def load_keras_arrays(model: Any, arrays: ArrayRecord) -> None:
    """Set ``model``'s weights from ``arrays`` (as :func:`keras_arrays` names them).

    Raises
    ------
    ValueError
        When the names or shapes differ from the model's: nothing is assigned.

    """
    variables = _variables(model)
    expected = [name for name, _ in variables]
    if list(arrays.keys()) != expected:
        missing = [n for n in expected if n not in arrays]
        unexpected = [n for n in arrays if n not in set(expected)]
        raise ValueError(
            "the arrays do not fit this Keras model: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            + ("" if missing or unexpected else ", or in another order")
        )
    values = []
    for name, variable in variables:
        value = arrays[name].numpy()
        current = variable.numpy()
        if value.shape != current.shape:
            raise ValueError(
                f"{name}: shape {value.shape} sent, the model has {current.shape}"
            )
        values.append(value.astype(current.dtype, copy=False))
    for (_, variable), value in zip(variables, values, strict=True):
        variable.assign(value)
