"""JSON that every reader accepts: undefined numbers become null.

An undefined metric (ROC-AUC of a one-class split) is NaN; `json.dumps` would write
it as `NaN`, which is not JSON and which PostgreSQL's jsonb refuses. Every path that
writes metrics (the CLI's --json, artifact manifests, the app's rows) calls this.
"""

from __future__ import annotations

import json
import math
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as None, numpy numbers and arrays as plain ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return json_safe(value.tolist())  # numpy scalars and arrays
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps` of `json_safe(value)`; refuses anything still not JSON."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
