"""tf.distribute strategies for `--strategy`: model building and training run inside `strategy.scope()`.

Keras splits each global batch (`--batch-size`) across the replicas and averages the loss over the global batch,
so the same flags train the same model on one device or many.

- default: no distribution (one device).
- mirrored: synchronous data parallelism on one machine: every GPU, or else every logical CPU device (a CPU-only
  machine has one unless tf.config.set_logical_device_configuration splits it, as the tests do).
- multi_worker: synchronous data parallelism over several machines; each worker runs the same command with its
  own TF_CONFIG (see docs/pages/guides/distributed.md). The strategy must be made before any other TF op runs (collective ops are
  configured at startup). Every worker reads the whole dataset and keeps its slice of each global batch
  (`shard_by_data`); Keras's checkpoint and backup callbacks write only on the chief, so every worker restores
  from the chief's copies, which must be on storage all workers see.
- tpu: a Cloud TPU named by $TPU_NAME (empty: the local TPU VM). Tokenization stays on the host, in tf.data.
"""
from __future__ import annotations

import os

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", log=print):
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}, not {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    elif name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            log("warning: --strategy multi_worker without $TF_CONFIG trains on this machine alone")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    log(f"strategy {name}: {strategy.num_replicas_in_sync} replica(s)")
    return strategy


def worker_index() -> int | None:
    """None for the process that writes the run's outputs, else this non-chief worker's index in the TF_CONFIG
    cluster. The writer: a process outside any cluster, the "chief" task, or worker 0 when there is no chief.
    TF_CONFIG is read by TF's own TFConfigClusterResolver."""
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    kind, index = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().jobs
    writes = kind is None or kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
    return None if writes else index


def is_chief() -> bool:
    return worker_index() is None


def shard_by_data(dataset):
    """`dataset` split between workers by element, not by file: tfbert's pipelines start from in-memory tensors,
    where FILE sharding has nothing to split (AUTO tries it, warns and falls back). Keras first cuts each global
    batch into one slice per replica; each worker then keeps its own slices, so worker i trains on the i-th part
    of every global batch and all workers take the same number of steps."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def local_batch_sizes(strategy, dataset) -> list[int]:
    """Examples this worker's replicas get from `dataset`'s first batch when it is distributed as Keras does:
    the observable of the batch split (global batch / replicas in sync)."""
    import tensorflow as tf

    targets = tf.nest.flatten(next(iter(strategy.experimental_distribute_dataset(dataset)))[1])[0]
    return [int(tf.shape(t)[0]) for t in strategy.experimental_local_results(targets)]


def barrier(strategy) -> None:
    """Returns once every worker has reached it (a one-number all-reduce across the cluster): after training,
    the chief has then finished writing the checkpoints the other workers read."""
    import tensorflow as tf

    strategy.reduce("SUM", strategy.run(tf.function(lambda: tf.constant(1.0))), axis=None)
