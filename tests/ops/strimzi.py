"""Structural schemas of the Strimzi and KEDA resources that secure Kafka (the
operators own the full ones), for tests/ops/test_offline.py's schema check."""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}
_SCALAR = {"type": ["string", "integer", "boolean", "number"]}

_LISTENER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "port", "type", "tls"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]{1,11}$"},
        "port": {"type": "integer", "minimum": 9092},
        "type": {
            "enum": ["internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"]
        },
        "tls": {"type": "boolean"},
        "authentication": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["tls", "scram-sha-512", "oauth", "custom"]}},
        },
        "configuration": {"type": "object"},
    },
}

_ACL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["resource", "operations"],
    "properties": {
        "resource": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                "name": {"type": "string"},
                "patternType": {"enum": ["literal", "prefix"]},
            },
        },
        "operations": {
            "type": "array",
            "minItems": 1,
            "items": {
                "enum": [
                    "Read",
                    "Write",
                    "Create",
                    "Delete",
                    "Alter",
                    "Describe",
                    "ClusterAction",
                    "AlterConfigs",
                    "DescribeConfigs",
                    "IdempotentWrite",
                    "All",
                ]
            },
        },
        "host": {"type": "string"},
    },
}

STRIMZI_SPECS: dict[str, dict[str, Any]] = {
    "Kafka": {
        "type": "object",
        "additionalProperties": False,
        "required": ["kafka", "entityOperator"],
        "properties": {
            "kafka": {
                "type": "object",
                "additionalProperties": False,
                "required": ["version", "listeners", "config"],
                "properties": {
                    "version": {"type": "string", "pattern": r"^4\.\d+\.\d+$"},
                    "metadataVersion": {"type": "string"},
                    "listeners": {"type": "array", "minItems": 1, "items": _LISTENER},
                    "authorization": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["simple", "opa", "keycloak", "custom"]}},
                    },
                    "rack": {"type": "object"},
                    "config": {"type": "object", "additionalProperties": _SCALAR},
                },
            },
            "entityOperator": {"type": "object"},
        },
    },
    "KafkaNodePool": {
        "type": "object",
        "additionalProperties": False,
        "required": ["replicas", "roles", "storage"],
        "properties": {
            "replicas": {"type": "integer", "minimum": 1},
            "roles": {"type": "array", "items": {"enum": ["controller", "broker"]}},
            "storage": {"type": "object", "required": ["type"]},
            "resources": {"type": "object"},
            "jvmOptions": {"type": "object"},
        },
    },
    "KafkaUser": {
        "type": "object",
        "additionalProperties": False,
        "required": ["authentication", "authorization"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["tls", "tls-external", "scram-sha-512"]}},
            },
            "authorization": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "acls"],
                "properties": {
                    "type": {"const": "simple"},
                    "acls": {"type": "array", "items": _ACL},
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "additionalProperties": False,
        "required": ["secretTargetRef"],
        "properties": {
            "secretTargetRef": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["parameter", "name", "key"],
                    "properties": {
                        "parameter": {"type": "string"},
                        "name": _NAME,
                        "key": {"type": "string"},
                    },
                },
            }
        },
    },
}
