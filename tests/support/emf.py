"""The CloudWatch embedded metric format (EMF) document structure, as a validator for tests.

Written from the EMF specification: a root object whose ``_aws`` metadata object has a
``Timestamp`` (epoch milliseconds) and ``CloudWatchMetrics``, an array of MetricDirectives
(``Namespace``; ``Dimensions``, an array of DimensionSets of at most 30 keys; ``Metrics``, at
most 100 MetricDefinitions with ``Name``, an optional ``Unit`` from CloudWatch's list and an
optional ``StorageResolution`` of 1 or 60). Every dimension key referenced must be a root
member holding a string, and every metric name a root member holding a number or an array of
at most 100 numbers.
"""

from __future__ import annotations

from typing import Any

import jsonschema

UNITS = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
]  # fmt: skip

NAME = {"type": "string", "minLength": 1, "maxLength": 1024}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "LogGroupName": {"type": "string", "minLength": 1},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 255},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "maxItems": 30,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 250},
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": NAME,
                                        "Unit": {"enum": UNITS},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}  # fmt: skip


def validate_emf(doc: dict[str, Any]) -> None:
    """Raise if ``doc`` is not a valid EMF document (structure and target members)."""
    jsonschema.validate(doc, SCHEMA)
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(doc.get(key), str), f"dimension {key!r} must be a string member"
        for metric in directive["Metrics"]:
            value = doc.get(metric["Name"])
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if isinstance(value, list):
                ok = len(value) <= 100 and all(isinstance(v, int | float) for v in value)
            assert ok, f"metric {metric['Name']!r} must be a number member, got {value!r}"
