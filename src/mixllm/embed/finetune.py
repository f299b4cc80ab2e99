"""Tag-enhanced embedding (MixLLM §3.1) by fine-tuning the whole sentence encoder.

The paper fine-tunes BERT so that queries of one domain gather around their domain centre and the
centres move apart. :func:`finetune_encoder` does that to a sentence-transformers model and saves
a folder that ``make_embedder("sentence:<folder>")`` loads. It runs on a CPU (slowly) or a GPU;
torch and sentence-transformers are imported only when it is called. For a fast head on fixed
embeddings instead, see :class:`~mixllm.embed.DomainProjection`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixllm.embed._domains import assign_domains
from mixllm.embed._util import as_text_list, missing_extra, quiet_hf_loading
from mixllm.errors import ConfigError, DataError

__all__ = ["FINETUNE_LOSSES", "finetune_encoder"]

logger = logging.getLogger(__name__)

FINETUNE_LOSSES = ("centre", "triplet")
"""Losses :func:`finetune_encoder` knows: the paper's centre loss, or batch-all triplets."""


def finetune_encoder(
    model_path_or_name: str,
    texts: Sequence[str],
    domains: Sequence[str | None] | None,
    out_dir: str | Path,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 2e-5,
    loss: str = "centre",
    margin: float = 0.0,
    device: str | None = None,
    seed: int = 0,
) -> Path:
    """Fine-tune a sentence encoder so that query domains separate (MixLLM §3.1).

    Parameters
    ----------
    model_path_or_name:
        A sentence-transformers folder or a name already in the Hugging Face cache.
    texts, domains:
        Training queries and their domain (task) labels. Where any label is missing, the
        domains are KMeans clusters of the untrained model's embeddings (number chosen by
        silhouette, as in :class:`~mixllm.embed.DomainProjection`).
    out_dir:
        Folder the fine-tuned model is saved to (created; existing files are overwritten).
    epochs, batch_size, lr:
        Passes over ``texts``, texts per step (shuffled by ``seed``), AdamW learning rate.
    loss:
        ``"centre"`` (default): the paper's loss on each batch,
        ``mean_i (1 - cos(z_i, c_d(i))) + mean_{a != b} max(0, cos(c_a, c_b) - margin)`` with
        ``c_d`` the normalised mean of the batch's embeddings of domain ``d`` (the same loss as
        :func:`mixllm.embed._domains.domain_loss`, differentiated by torch).
        ``"triplet"``: sentence-transformers' ``BatchAllTripletLoss`` with cosine distance,
        ``mean over valid (a, p, n) of max(0, cos(a, n) - cos(a, p) + margin)``: the same pull
        (same domain closer) and push (other domains farther, up to a margin) measured between
        queries rather than against domain centres; give ``margin > 0`` (e.g. 0.2) with it.
    margin:
        Cosine margin of the push (``centre``) or of the triplets (``triplet``).
    device:
        Torch device; ``None`` picks ``"cuda"`` when available, else ``"cpu"``.
    seed:
        Seeds torch and the batch order.

    Returns
    -------
    Path
        ``out_dir``; ``make_embedder(f"sentence:{out_dir}")`` embeds with the new model.

    Raises
    ------
    ConfigError
        Unknown loss, bad numbers, or a model that cannot be loaded.
    DataError
        Fewer than 2 texts or domains, or labels not aligned with texts.
    """
    batch = as_text_list(texts)
    _check(len(batch), epochs=epochs, batch_size=batch_size, lr=lr, loss=loss, margin=margin)
    try:
        import torch
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.util import batch_to_device
    except ImportError as exc:
        raise missing_extra("finetune_encoder", exc) from exc
    torch.manual_seed(seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        with quiet_hf_loading():
            model = SentenceTransformer(model_path_or_name, device=device)
    except OSError as exc:
        raise ConfigError(
            f"cannot load sentence-transformers model {model_path_or_name!r}: {exc}"
        ) from exc
    ids = _domain_ids(model, batch, domains, seed)
    prepare = getattr(model, "preprocess", None) or model.tokenize  # preprocess: ST >= 6
    objective = _objective(model, loss, margin)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        losses = []
        for rows in np.array_split(rng.permutation(len(batch)), -(-len(batch) // batch_size)):
            features = batch_to_device(prepare([batch[i] for i in rows]), model.device)
            embeddings = model(features)["sentence_embedding"]
            labels = torch.as_tensor(ids[rows], device=model.device)
            value = objective(embeddings, labels)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            losses.append(float(value.detach()))
        logger.info("finetune epoch %d: mean loss %.4f", epoch + 1, float(np.mean(losses)))
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_hf_loading():  # no progress bar while writing
        model.save(str(out))
    logger.info(
        "fine-tuned %s in %.1f s into %s", model_path_or_name, time.perf_counter() - started, out
    )
    return out


def _check(n: int, *, epochs: int, batch_size: int, lr: float, loss: str, margin: float) -> None:
    if loss not in FINETUNE_LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; known: {list(FINETUNE_LOSSES)}")
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}={value!r}; expected an integer >= {low}")
    if not (np.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr={lr!r}; expected a positive number")
    if not -1.0 <= margin < 2.0:
        raise ConfigError(f"margin={margin!r}; expected a cosine margin in [-1, 2)")
    if n < 2:
        raise DataError(f"{n} text(s) to fine-tune on; expected at least 2")


def _domain_ids(
    model: Any, texts: list[str], domains: Sequence[str | None] | None, seed: int
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Domain index per text: the labels, or KMeans clusters of the model's embeddings."""
    if domains is not None and len(domains) != len(texts):
        raise DataError(
            f"{len(domains)} domain labels for {len(texts)} texts; expected {len(texts)}"
        )
    if domains is not None and all(d is not None for d in domains):
        x = np.zeros((len(texts), 1), dtype=np.float32)  # labels only: no need to embed
    else:
        x = np.asarray(model.encode(texts, normalize_embeddings=True, show_progress_bar=False))
    names, ids = assign_domains(x.astype(np.float32), domains, n_clusters=None, seed=seed)
    logger.info("fine-tuning on %d texts in %d domains", len(texts), len(names))
    return ids


def _objective(model: Any, loss: str, margin: float) -> Any:
    """``f(embeddings, labels) -> scalar tensor`` for the chosen loss."""
    import torch
    from torch.nn import functional

    if loss == "triplet":
        try:
            from sentence_transformers.sentence_transformer import losses
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers import losses  # type: ignore[no-redef,attr-defined]
        distance = losses.BatchHardTripletLossDistanceFunction.cosine_distance
        triplet = losses.BatchAllTripletLoss(model, distance_metric=distance, margin=margin)
        return lambda embeddings, labels: triplet.batch_all_triplet_loss(labels, embeddings)

    def centre(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = functional.normalize(embeddings, dim=1)
        _, local = torch.unique(labels, return_inverse=True)
        onehot = functional.one_hot(local).T.to(z.dtype)  # (domains, rows)
        centres = functional.normalize(onehot @ z / onehot.sum(dim=1, keepdim=True), dim=1)
        pull = (1.0 - (z * centres[local]).sum(dim=1)).mean()
        k = len(centres)
        if k < 2:
            return pull
        off = ~torch.eye(k, dtype=torch.bool, device=z.device)
        push = torch.relu(centres @ centres.T - margin)[off].mean()
        return pull + push

    return centre
