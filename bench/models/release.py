"""Letting go of a model when its arm closes, so the next arm's model does not share memory with it.

A full garbage collection used to follow every close: about 0.3 s with the bench's heap, paid
twice per arm, a quarter of `make quick`'s wall time (py-spy, 2026-12-02). Reference counting
frees a model the moment its last reference goes, unless a reference cycle holds it: the causal
LM (peft-wrapped or not) has none; a sentence-transformers model has one, through its model card,
which points back at it. So the known back-link is cut and the collector runs only when the model
outlives its last reference anyway (a cycle not known here), as before.
"""

from __future__ import annotations

import gc
import weakref


def release(owner, attr: str = "model") -> bool:
    """Set `owner.<attr>` to None and free the model it held now; True when that took a full
    garbage collection (the model sat in a cycle not cut here, or something else holds it)."""
    model = getattr(owner, attr, None)
    setattr(owner, attr, None)
    if model is None:
        return False
    card = getattr(model, "model_card_data", None)   # sentence-transformers: card.model is the model
    if card is not None and getattr(card, "model", None) is model:
        card.model = None
    try:
        alive = weakref.ref(model)
    except TypeError:   # not weak-referenceable: no way to tell, collect as before
        alive = lambda: True  # noqa: E731
    del model, card
    collected = alive() is not None
    if collected:
        gc.collect()
    _empty_cuda_cache()
    return collected


def _empty_cuda_cache() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
