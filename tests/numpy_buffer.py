"""``as_buffer(array)``: a numpy array, typed as the bytes-like object it is.

numpy's stubs declare ``ndarray.__buffer__`` only when checking for Python 3.12 or later, and
mypy checks this project as 3.11, so it does not see an array as a ``Buffer``, which it is at
run time. Tests that hand arrays to the core (as the API allows) pass them through this.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from typing_extensions import Buffer


def as_buffer(array: np.ndarray[Any, Any]) -> Buffer:
    return array  # type: ignore[return-value]  # numpy: __buffer__ is declared for 3.12+ only
