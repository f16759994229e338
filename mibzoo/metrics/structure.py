"""The learned dependency structure of a model as metrics (Sec. 3.5).

For a model whose M^q or M^p is learned, every edge probability sigmoid(ρ) becomes a metric
``structure/inference/<modality>/<block>`` (M^q: x_i informs z_j) or
``structure/generation/<modality>/<block>`` (M^p: z_j feeds x_i). Fixed structures are part of
the model's definition, not a result, and give no metrics.
"""


def learned_structure(model):
    """``{"structure/<inference|generation>/<modality>/<block>": probability}`` of the learned masks.

    Args:
        model: an `MIBModel` (or any object with ``structure()`` and ``structure_masks.logits``).

    Returns:
        A flat dict of floats in [0, 1]; empty when nothing is learned.

    Example:

    ```python
    mibzoo.metrics.learned_structure(model)
    # {'structure/inference/image/z': 0.99, 'structure/inference/label/z': 0.98, ...}
    ```
    """
    masks = getattr(model, "structure_masks", None)
    learned = set(getattr(masks, "logits", {}) or {})
    if not learned:
        return {}
    structure = model.structure()
    out = {}
    for key in ("inference", "generation"):
        if key not in learned:
            continue
        for i, modality in enumerate(structure["modalities"]):
            for j, block in enumerate(structure["blocks"]):
                out[f"structure/{key}/{modality}/{block}"] = float(structure[key][i][j])
    return out
