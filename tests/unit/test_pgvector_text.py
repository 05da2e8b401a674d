"""The pgvector adapter's fast text form of a vector gives every float32 back exactly."""

from __future__ import annotations

import numpy as np
from sqlalchemy.dialects import postgresql

from shared.embeddings.pgvector import FastVector


def test_numpy_rows_round_trip_exactly_and_other_values_use_pgvectors_conversion():
    bind = FastVector(384).bind_processor(postgresql.psycopg2.dialect())
    rng = np.random.default_rng(16)
    rows = np.concatenate([rng.standard_normal((50, 384)), np.full((1, 384), 1e-38)]).astype(np.float32)
    for row in rows:
        written = bind(row)
        assert written.startswith("[") and written.endswith("]")
        assert np.array_equal(np.array(written[1:-1].split(","), dtype=np.float32), row)
    assert bind([1.0, 2.5]) == "[1.0,2.5]"
    assert bind(None) is None
