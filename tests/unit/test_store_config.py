"""``[store]`` settings: defaults, validation messages, environment overrides."""

from __future__ import annotations

import pytest

from tickserver.config import ConfigError, load_config


def test_store_defaults_keep_history_locally_with_batched_fsync() -> None:
    cfg = load_config(environ={}).store

    assert cfg.enabled
    assert cfg.path == "./tickserver-data"
    assert cfg.s3_bucket is None
    assert cfg.fsync == "batch"
    assert not cfg.quotes


def test_store_rejects_an_s3_url_where_a_bucket_name_belongs() -> None:
    with pytest.raises(ConfigError, match=r"store\.s3_bucket: .*not a valid S3 bucket name"):
        load_config(environ={"TICKSERVER_STORE__S3_BUCKET": "s3://my-bucket/prefix"})


def test_store_kms_key_needs_sse_kms() -> None:
    with pytest.raises(ConfigError, match='s3_kms_key_id needs s3_sse = "aws:kms"'):
        load_config(environ={}, overrides={"store": {"s3_kms_key_id": "alias/x"}})


def test_store_settings_come_from_the_environment_and_the_prefix_loses_its_slashes() -> None:
    cfg = load_config(
        environ={
            "TICKSERVER_STORE__S3_BUCKET": "my-bucket",
            "TICKSERVER_STORE__S3_PREFIX": "/md/",
            "TICKSERVER_STORE__FSYNC": "always",
        }
    ).store

    assert cfg.s3_bucket == "my-bucket"
    assert cfg.s3_prefix == "md"
    assert cfg.fsync == "always"


def test_store_rejects_an_unknown_fsync_policy() -> None:
    with pytest.raises(ConfigError, match=r"store\.fsync"):
        load_config(environ={"TICKSERVER_STORE__FSYNC": "sometimes"})
