"""Policy weights in the form Ray's object store moves without a copy in either process.

`ray.put` of torch tensors pickles each one in band: the driver builds a bytes copy of the whole
model before the object store gets a second one, and every actor's `ray.get` deserializes a third
(measured on SmolLM2-135M: the driver's resident memory rose by 0.9 GB during each weight sync).
NumPy arrays travel out of band: `ray.put` writes them straight into the store, and `ray.get` hands
back arrays that point into its shared memory. So a sync sends each tensor as a flat byte array with
its dtype and shape; `tensors()` views the store's bytes as tensors again (read-only, no copy) for the
engine to copy into its own parameters. A byte view carries any dtype (NumPy has no bfloat16).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class WeightPayload:
    """name -> (the tensor's bytes, its dtype, its shape); build with `from_tensors`."""

    arrays: dict[str, np.ndarray]
    dtypes: dict[str, torch.dtype]
    shapes: dict[str, tuple[int, ...]]

    @classmethod
    def from_tensors(cls, state: Mapping[str, torch.Tensor]) -> WeightPayload:
        """Byte views of CPU tensors (a copy only for a non-contiguous or non-CPU tensor)."""
        arrays, dtypes, shapes = {}, {}, {}
        for name, tensor in state.items():
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            arrays[name] = flat.view(torch.uint8).numpy()
            dtypes[name], shapes[name] = tensor.dtype, tuple(tensor.shape)
        return cls(arrays, dtypes, shapes)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights as tensors over the payload's memory (the object store's, after `ray.get`).

        They may be read-only: copy them into parameters, never write to them."""
        with warnings.catch_warnings():  # torch warns that the store's arrays are not writable
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return {name: torch.from_numpy(array).view(self.dtypes[name]).reshape(self.shapes[name])
                    for name, array in self.arrays.items()}

    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())
