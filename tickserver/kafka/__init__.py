"""Kafka plumbing shared by the publisher sink, the ``kafka`` source and the benchmark.

- :mod:`tickserver.kafka.records`: the record formats (JSON values, schema version 1) and the
  compact columnar frames the sink keeps in its on-disk spool.
- :mod:`tickserver.kafka.client`: the ``[kafka]`` config mapped to aiokafka client options
  (TLS, SASL PLAIN/SCRAM, AWS MSK IAM), topic creation and the idempotence probe.
"""
