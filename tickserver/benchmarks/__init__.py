"""Benchmarks behind ``tickserver bench <name>``: each module defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> Report``. Peers come from the ``[bench]`` extra."""

BENCHMARKS: dict[str, str] = {
    "core": "tickserver.benchmarks.core",
    "book": "tickserver.benchmarks.book",
    "pipeline": "tickserver.benchmarks.pipeline",
    "fanout": "tickserver.benchmarks.fanout",
    "kafka": "tickserver.benchmarks.kafka",
    "store": "tickserver.benchmarks.store",
    "replay": "tickserver.benchmarks.replay",
    "validation": "tickserver.benchmarks.validation",
    "dashboard": "tickserver.benchmarks.dashboard",
}
