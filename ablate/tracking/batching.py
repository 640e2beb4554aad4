"""Split tracking writes into MLflow ``log_batch`` calls within the server's limits.

MLflow accepts at most 1000 metrics, 100 params and 100 tags (1000 entities in all) per
``log_batch``. One batched call is ~20x faster than a call per metric, so the worker buffers
metrics and the orchestrator logs a run's params and tags in as few calls as the limits allow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ENTITIES = 1000

MetricRow = tuple[str, float, int, int]  # key, value, timestamp (ms), step


def batches(
    metrics: Sequence[MetricRow], params: dict[str, str], tags: dict[str, str]
) -> Iterator[tuple[list[MetricRow], dict[str, str], dict[str, str]]]:
    """Chunks ``(metrics, params, tags)`` that each fit one ``log_batch`` call (at least one)."""
    metric_list = list(metrics)
    param_items = list(params.items())
    tag_items = list(tags.items())
    first = True
    while first or metric_list or param_items or tag_items:
        first = False
        chunk_params = dict(param_items[:MAX_PARAMS])
        param_items = param_items[MAX_PARAMS:]
        chunk_tags = dict(tag_items[:MAX_TAGS])
        tag_items = tag_items[MAX_TAGS:]
        room = min(MAX_METRICS, MAX_ENTITIES - len(chunk_params) - len(chunk_tags))
        chunk_metrics = metric_list[:room]
        metric_list = metric_list[room:]
        yield chunk_metrics, chunk_params, chunk_tags
