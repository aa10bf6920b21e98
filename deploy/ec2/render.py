#!/usr/bin/env python3
"""Generate deploy/ec2/cloud-init.yaml and deploy/ec2/tickserver.cfn.yaml from deploy/ec2/src/.

    python deploy/ec2/render.py            # regenerate both (commit the result)
    python deploy/ec2/render.py --check    # fail if either is out of date (the tests run this)
    python deploy/ec2/render.py user-data --set ApiPort=8080 --set ... > user-data.yaml
    python deploy/ec2/render.py config --set ApiPort=8080 --set ... > tickserver.toml

One source per file: the unit, the config, the agent config, the install and bootstrap scripts
and the IAM policy live in src/ (and iam-policy.json); the cloud-init user-data embeds them, and
the CloudFormation template embeds the user-data and the policy. Placeholders use
CloudFormation's Fn::Sub syntax: ``${Name}`` is replaced, ``${!Text}`` stands for a literal
``${Text}``. Files that are not templates (the unit, the scripts) are escaped on embedding.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
USER_DATA = HERE / "cloud-init.yaml"
TEMPLATE = HERE / "tickserver.cfn.yaml"
POLICY = HERE / "iam-policy.json"
USER_DATA_LIMIT = 16384  # EC2: user data is at most 16 KiB before base64

# (source, path on the instance, mode, is it a Fn::Sub template?)
FILES = [
    ("tickserver.toml", "/etc/tickserver/tickserver.toml", "0644", True),
    ("cloudwatch-agent.json", "/etc/tickserver/cloudwatch-agent.json", "0644", True),
    ("tickserver.service", "/etc/systemd/system/tickserver.service", "0644", False),
    ("tickserver.tmpfiles", "/etc/tmpfiles.d/tickserver.conf", "0644", False),
    ("tickserver.logrotate", "/etc/logrotate.d/tickserver", "0644", False),
    ("tickserver-install", "/usr/local/sbin/tickserver-install", "0755", False),
    ("bootstrap.sh", "/usr/local/sbin/tickserver-bootstrap", "0700", True),
]

_PLACEHOLDER = re.compile(r"\$\{(!?)([^}]*)\}")


def placeholders(text: str) -> set[str]:
    """Names of the ``${Name}`` placeholders in ``text`` (literals ``${!..}`` excluded)."""
    return {m.group(2) for m in _PLACEHOLDER.finditer(text) if not m.group(1)}


def sub(text: str, values: dict[str, str]) -> str:
    """Substitute like CloudFormation's Fn::Sub; an unknown name is an error."""
    missing = sorted(placeholders(text) - set(values))
    if missing:
        raise KeyError(f"no value for {', '.join(missing)} (pass --set NAME=VALUE)")

    def one(m: re.Match[str]) -> str:
        return "${" + m.group(2) + "}" if m.group(1) else values[m.group(2)]

    return _PLACEHOLDER.sub(one, text)


def escape(text: str) -> str:
    """Make a non-template file survive Fn::Sub unchanged."""
    return text.replace("${", "${!")


def _embedded(text: str) -> str:
    # Full-line comments (not the shebang) are dropped to stay under EC2's 16 KiB user-data
    # limit; the sources in deploy/ec2/src keep them.
    lines = text.splitlines()
    keep = [
        line
        for i, line in enumerate(lines)
        if not (line.lstrip().startswith("#") and not (i == 0 and line.startswith("#!")))
    ]
    return "\n".join(keep) + "\n"


def user_data() -> str:
    """The cloud-init user-data with ``${Name}`` placeholders."""
    out = [(SRC / "cloud-init.head.yaml").read_text(), "write_files:\n"]
    for src, path, mode, is_template in FILES:
        text = (SRC / src).read_text()
        if src.endswith(".json"):
            text = json.dumps(json.loads(text), separators=(",", ":")) + "\n"
        else:
            text = _embedded(text)
        if not is_template:
            text = escape(text)
        out.append(f"  - path: {path}\n    permissions: '{mode}'\n    content: |\n")
        out.extend(f"      {line}\n" if line else "\n" for line in text.splitlines())
    out.append("runcmd:\n  - [/usr/local/sbin/tickserver-bootstrap]\n")
    return "".join(out)


# ------------------------------------------------------------------------ CloudFormation


def _sub(text: str) -> Any:
    return {"Fn::Sub": text} if placeholders(text) or "${!" in text else text


def _with_vars(node: Any) -> Any:
    if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        used = {k: v for k, v in POLICY_VARS.items() if k in placeholders(node["Fn::Sub"])}
        return {"Fn::Sub": [node["Fn::Sub"], used]} if used else node
    if isinstance(node, dict):
        return {k: _with_vars(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_vars(v) for v in node]
    return node


def _subst_strings(node: Any) -> Any:
    """Turn every string with placeholders into Fn::Sub (for the IAM policy)."""
    if isinstance(node, dict):
        return {k: _subst_strings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_subst_strings(v) for v in node]
    if isinstance(node, str):
        return _sub(node)
    return node


# Placeholders of the policy that are not parameters, resources or pseudo parameters.
POLICY_VARS: dict[str, Any] = {
    # "name/uuid" of arn:aws:kafka:REGION:ACCOUNT:cluster/name/uuid
    "MskClusterPath": {"Fn::Select": [1, {"Fn::Split": [":cluster/", {"Ref": "MskClusterArn"}]}]},
}


def policy_statements() -> list[Any]:
    """The instance policy's statements as template nodes (MSK statement conditional)."""
    out: list[Any] = []
    for st in json.loads(POLICY.read_text())["Statement"]:
        node = _subst_strings(st)
        if "MskClusterPath" in json.dumps(st):
            node = _with_vars(node)
        if st.get("Sid") == "MskIamAuth":
            node = {"Fn::If": ["UseMskIam", node, {"Ref": "AWS::NoValue"}]}
        out.append(node)
    return out


BUCKET_NAME = {
    "Fn::Join": [
        "-",
        ["tickserver", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}],
    ]
}
DIMS = [{"Name": "Stack", "Value": {"Ref": "AWS::StackName"}}]


def _metric(mid: str, name: str, stat: str, period: int = 60) -> dict[str, Any]:
    return {
        "Id": mid,
        "ReturnData": False,
        "MetricStat": {
            "Metric": {
                "Namespace": {"Ref": "MetricsNamespace"},
                "MetricName": name,
                "Dimensions": DIMS,
            },
            "Period": period,
            "Stat": stat,
        },
    }


def _alarm(description: str, **props: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
            **props,
        },
    }


def template() -> dict[str, Any]:
    """The CloudFormation template as a dict."""
    ud_vars = {
        "ListenAddress": "0.0.0.0",
        "DataBucket": {"Ref": "DataBucket"},
        "LogGroup": {"Ref": "LogGroup"},
        "KafkaEnabled": {"Fn::If": ["UseKafka", "true", "false"]},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "tickserver on one EC2 instance: S3 history with a Lambda compactor, "
        "CloudWatch logs, metrics and alarms (generated by deploy/ec2/render.py).",
        "Parameters": {
            "AllowedCidr": {
                "Type": "String",
                "Description": "Who may reach the API/dashboard port (and SSH when KeyName "
                "is set), e.g. 203.0.113.7/32. Nothing else is open.",
                "AllowedPattern": r"^(\d{1,3}\.){3}\d{1,3}/\d{1,2}$",
                "ConstraintDescription": "an IPv4 CIDR such as 203.0.113.7/32",
            },
            "VpcId": {"Type": "AWS::EC2::VPC::Id"},
            "SubnetId": {
                "Type": "AWS::EC2::Subnet::Id",
                "Description": "A subnet of VpcId; public (auto-assign public IP) to reach the "
                "dashboard from AllowedCidr over the internet.",
            },
            "ImageId": {
                "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                "Default": "/aws/service/debian/release/bookworm/latest/amd64",
                "Description": "Debian 12 AMI (the artifact needs its CPython 3.11); use "
                ".../bookworm/latest/arm64 for Graviton with an arm64 artifact.",
            },
            "InstanceType": {"Type": "String", "Default": "m7i.large"},
            "DiskSizeGiB": {"Type": "Number", "Default": 50, "MinValue": 20, "MaxValue": 16384},
            "KeyName": {
                "Type": "String",
                "Default": "",
                "Description": "Optional EC2 key pair for SSH (from AllowedCidr only).",
            },
            "ApiPort": {"Type": "Number", "Default": 8080, "MinValue": 1024, "MaxValue": 65535},
            "ArtifactBucket": {
                "Type": "String",
                "Description": "Bucket holding the artifact and the compactor zip "
                "(built by deploy/ec2/build-artifact.sh).",
            },
            "ArtifactPrefix": {
                "Type": "String",
                "Default": "tickserver/releases/",
                "AllowedPattern": "^([A-Za-z0-9._-]+/)+$",
                "Description": "Key prefix of the releases in ArtifactBucket (ends with /); "
                "the instance may read it, for in-place upgrades.",
            },
            "ArtifactName": {
                "Type": "String",
                "AllowedPattern": "^[A-Za-z0-9._-]+[.]pyz$",
                "Description": "The .pyz under ArtifactPrefix, e.g. "
                "tickserver-0.1.0-cp311-x86_64.pyz",
            },
            "ArtifactSha256": {
                "Type": "String",
                "AllowedPattern": "^[0-9a-f]{64}$",
                "Description": "sha256 of the .pyz (the .sha256 file beside it).",
            },
            "CompactorName": {
                "Type": "String",
                "AllowedPattern": "^[A-Za-z0-9._-]+[.]zip$",
                "Description": "The compactor zip under ArtifactPrefix.",
            },
            "CompactorHandler": {"Type": "String", "Default": "tickserver.compactor.handler"},
            "CompactorArchitecture": {
                "Type": "String",
                "Default": "x86_64",
                "AllowedValues": ["x86_64", "arm64"],
            },
            "DataPrefix": {
                "Type": "String",
                "Default": "tickserver/",
                "AllowedPattern": "^([a-z0-9][a-z0-9._-]*/)+$",
                "Description": "Key prefix of the history in the data bucket (ends with /).",
            },
            "PartsRetentionDays": {
                "Type": "Number",
                "Default": 7,
                "MinValue": 1,
                "Description": "Days S3 keeps the parts the compactor merged and deleted (and "
                "any overwritten object) as old versions, for restores.",
            },
            "Symbols": {"Type": "String", "Default": "AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,SPY"},
            "Sources": {
                "Type": "String",
                "Default": "sim",
                "Description": "Comma-separated sources: sim, yfinance, alphavantage, ...",
            },
            "ApiTokenParameter": {
                "Type": "String",
                "Default": "/tickserver/api-token",
                "AllowedPattern": "^/[A-Za-z0-9_./-]+$",
                "Description": "SSM SecureString (AWS-managed key) holding the API bearer token.",
            },
            "MetricsNamespace": {"Type": "String", "Default": "tickserver"},
            "LogRetentionDays": {
                "Type": "Number",
                "Default": 30,
                "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 180, 365, 731, 1827, 3653],
            },
            "AlarmEmail": {
                "Type": "String",
                "Default": "",
                "Description": "Optional address subscribed to the alarms.",
            },
            "NoTickMinutes": {
                "Type": "Number",
                "Default": 5,
                "MinValue": 1,
                "Description": "Alarm when no trade arrived for this many minutes while "
                "market.calendar says the market is open.",
            },
            "BacklogMinutes": {
                "Type": "Number",
                "Default": 15,
                "MinValue": 2,
                "Description": "Alarm when the sinks' spool backlog grew every minute for "
                "this long.",
            },
            "KafkaBootstrapServers": {
                "Type": "String",
                "Default": "",
                "Description": "Optional: an existing Kafka/MSK cluster (host:port,...); "
                "empty = no Kafka.",
            },
            "MskClusterArn": {
                "Type": "String",
                "Default": "",
                "Description": "Optional: the MSK cluster's ARN, to grant IAM auth to "
                "topics under tickserver.",
            },
            "MskSecurityGroupId": {
                "Type": "String",
                "Default": "",
                "Description": "Optional: the MSK cluster's security group; the instance is "
                "allowed in on 9092-9098.",
            },
        },
        "Conditions": {
            "HasKey": {"Fn::Not": [{"Fn::Equals": [{"Ref": "KeyName"}, ""]}]},
            "HasEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
            "UseKafka": {"Fn::Not": [{"Fn::Equals": [{"Ref": "KafkaBootstrapServers"}, ""]}]},
            "UseMskIam": {"Fn::Not": [{"Fn::Equals": [{"Ref": "MskClusterArn"}, ""]}]},
            "HasMskSg": {"Fn::Not": [{"Fn::Equals": [{"Ref": "MskSecurityGroupId"}, ""]}]},
        },
        "Resources": {
            "DataBucket": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "DependsOn": "CompactorPermission",
                "Properties": {
                    "BucketName": BUCKET_NAME,
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "LifecycleConfiguration": {
                        "Rules": [
                            {
                                "Id": "abort-incomplete-uploads",
                                "Status": "Enabled",
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                            },
                            {
                                "Id": "expire-deleted-and-replaced-parts",
                                "Status": "Enabled",
                                "NoncurrentVersionExpiration": {
                                    "NoncurrentDays": {"Ref": "PartsRetentionDays"}
                                },
                            },
                            {
                                "Id": "history-to-intelligent-tiering",
                                "Status": "Enabled",
                                "Prefix": {"Ref": "DataPrefix"},
                                "Transitions": [
                                    {"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": 30}
                                ],
                            },
                        ]
                    },
                    "NotificationConfiguration": {
                        "LambdaConfigurations": [
                            {
                                "Event": "s3:ObjectCreated:*",
                                "Function": {"Fn::GetAtt": ["Compactor", "Arn"]},
                                "Filter": {
                                    "S3Key": {
                                        "Rules": [
                                            {"Name": "prefix", "Value": {"Ref": "DataPrefix"}},
                                            {"Name": "suffix", "Value": ".parquet"},
                                        ]
                                    }
                                },
                            }
                        ]
                    },
                },
            },
            "DataBucketPolicy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "DataBucket"},
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "TlsOnly",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [
                                    {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}"},
                                    {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}/*"},
                                ],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ],
                    },
                },
            },
            "CompactorRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "lambda.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "compact-history",
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": "s3:ListBucket",
                                        "Resource": {
                                            "Fn::Sub": [
                                                "arn:${AWS::Partition}:s3:::${B}",
                                                {"B": BUCKET_NAME},
                                            ]
                                        },
                                        "Condition": {
                                            "StringLike": {
                                                "s3:prefix": [{"Fn::Sub": "${DataPrefix}*"}]
                                            }
                                        },
                                    },
                                    {
                                        "Effect": "Allow",
                                        "Action": [
                                            "s3:GetObject",
                                            "s3:PutObject",
                                            "s3:DeleteObject",
                                        ],
                                        "Resource": {
                                            "Fn::Sub": [
                                                "arn:${AWS::Partition}:s3:::${B}/${DataPrefix}*",
                                                {"B": BUCKET_NAME},
                                            ]
                                        },
                                    },
                                    {
                                        "Effect": "Allow",
                                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                        "Resource": {"Fn::GetAtt": ["CompactorLogGroup", "Arn"]},
                                    },
                                ],
                            },
                        }
                    ],
                },
            },
            "CompactorLogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {
                    "LogGroupName": {"Fn::Sub": "/aws/lambda/${AWS::StackName}-compactor"},
                    "RetentionInDays": {"Ref": "LogRetentionDays"},
                },
            },
            "Compactor": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": {"Fn::Sub": "${AWS::StackName}-compactor"},
                    "Description": "Compacts a day's small Parquet parts into one file per "
                    "symbol and day (idempotent).",
                    "Runtime": "python3.12",
                    "Architectures": [{"Ref": "CompactorArchitecture"}],
                    "Handler": {"Ref": "CompactorHandler"},
                    "Code": {
                        "S3Bucket": {"Ref": "ArtifactBucket"},
                        "S3Key": {"Fn::Sub": "${ArtifactPrefix}${CompactorName}"},
                    },
                    "Role": {"Fn::GetAtt": ["CompactorRole", "Arn"]},
                    "MemorySize": 2048,
                    "Timeout": 300,
                    "LoggingConfig": {"LogGroup": {"Ref": "CompactorLogGroup"}},
                    "EphemeralStorage": {"Size": 4096},
                },
            },
            "CompactorPermission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": {"Ref": "Compactor"},
                    "Principal": "s3.amazonaws.com",
                    "SourceAccount": {"Ref": "AWS::AccountId"},
                    "SourceArn": {
                        "Fn::Sub": ["arn:${AWS::Partition}:s3:::${B}", {"B": BUCKET_NAME}]
                    },
                },
            },
            "LogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {
                    "LogGroupName": {"Fn::Sub": "/tickserver/${AWS::StackName}"},
                    "RetentionInDays": {"Ref": "LogRetentionDays"},
                },
            },
            "InstanceRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "ec2.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "tickserver",
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": policy_statements(),
                            },
                        }
                    ],
                },
            },
            "InstanceProfile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"Roles": [{"Ref": "InstanceRole"}]},
            },
            "SecurityGroup": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {
                    "GroupDescription": "tickserver: API/dashboard (and SSH with a key) from "
                    "AllowedCidr only",
                    "VpcId": {"Ref": "VpcId"},
                    "SecurityGroupIngress": [
                        {
                            "Description": "API and dashboard",
                            "IpProtocol": "tcp",
                            "FromPort": {"Ref": "ApiPort"},
                            "ToPort": {"Ref": "ApiPort"},
                            "CidrIp": {"Ref": "AllowedCidr"},
                        },
                        {
                            "Fn::If": [
                                "HasKey",
                                {
                                    "Description": "SSH",
                                    "IpProtocol": "tcp",
                                    "FromPort": 22,
                                    "ToPort": 22,
                                    "CidrIp": {"Ref": "AllowedCidr"},
                                },
                                {"Ref": "AWS::NoValue"},
                            ]
                        },
                    ],
                },
            },
            "MskIngress": {
                "Type": "AWS::EC2::SecurityGroupIngress",
                "Condition": "HasMskSg",
                "Properties": {
                    "Description": "tickserver instance to MSK brokers",
                    "GroupId": {"Ref": "MskSecurityGroupId"},
                    "IpProtocol": "tcp",
                    "FromPort": 9092,
                    "ToPort": 9098,
                    "SourceSecurityGroupId": {"Fn::GetAtt": ["SecurityGroup", "GroupId"]},
                },
            },
            "Instance": {
                "Type": "AWS::EC2::Instance",
                "CreationPolicy": {"ResourceSignal": {"Count": 1, "Timeout": "PT20M"}},
                "Properties": {
                    "ImageId": {"Ref": "ImageId"},
                    "InstanceType": {"Ref": "InstanceType"},
                    "IamInstanceProfile": {"Ref": "InstanceProfile"},
                    "SubnetId": {"Ref": "SubnetId"},
                    "SecurityGroupIds": [{"Fn::GetAtt": ["SecurityGroup", "GroupId"]}],
                    "KeyName": {"Fn::If": ["HasKey", {"Ref": "KeyName"}, {"Ref": "AWS::NoValue"}]},
                    "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
                    "BlockDeviceMappings": [
                        {
                            "DeviceName": "/dev/xvda",
                            "Ebs": {
                                "VolumeSize": {"Ref": "DiskSizeGiB"},
                                "VolumeType": "gp3",
                                "Encrypted": True,
                            },
                        }
                    ],
                    "UserData": {"Fn::Base64": {"Fn::Sub": [user_data(), ud_vars]}},
                    "Tags": [{"Key": "Name", "Value": {"Ref": "AWS::StackName"}}],
                },
            },
            "AlarmTopic": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"KmsMasterKeyId": "alias/aws/sns"},
            },
            "AlarmSubscription": {
                "Type": "AWS::SNS::Subscription",
                "Condition": "HasEmail",
                "Properties": {
                    "TopicArn": {"Ref": "AlarmTopic"},
                    "Protocol": "email",
                    "Endpoint": {"Ref": "AlarmEmail"},
                },
            },
            "NoTicksAlarm": _alarm(
                "No trade arrived for NoTickMinutes minutes while the market was open",
                Metrics=[
                    _metric("ticks", "Ticks", "Sum"),
                    _metric("open", "MarketOpen", "Maximum"),
                    {
                        "Id": "stale",
                        "Label": "market open and no ticks",
                        "Expression": "IF(open > 0 AND ticks < 1, 1, 0)",
                        "ReturnData": True,
                    },
                ],
                EvaluationPeriods={"Ref": "NoTickMinutes"},
                DatapointsToAlarm={"Ref": "NoTickMinutes"},
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                TreatMissingData="notBreaching",
            ),
            "BacklogGrowingAlarm": _alarm(
                "The sinks' spool backlog (records not yet in Kafka/S3) grew every minute for "
                "BacklogMinutes minutes",
                Metrics=[
                    _metric("backlog", "SinkBacklog", "Maximum"),
                    {
                        "Id": "growth",
                        "Label": "backlog growth per minute",
                        "Expression": "DIFF(backlog)",
                        "ReturnData": True,
                    },
                ],
                EvaluationPeriods={"Ref": "BacklogMinutes"},
                DatapointsToAlarm={"Ref": "BacklogMinutes"},
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
            ),
            "RestartsAlarm": _alarm(
                "tickserver started twice or more within 15 minutes (crash and restart)",
                Namespace={"Ref": "MetricsNamespace"},
                MetricName="Starts",
                Dimensions=DIMS,
                Statistic="Sum",
                Period=900,
                EvaluationPeriods=1,
                Threshold=2,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                TreatMissingData="notBreaching",
            ),
            "NotReadyAlarm": _alarm(
                "tickserver not ready (or sending no metrics) for 5 minutes",
                Namespace={"Ref": "MetricsNamespace"},
                MetricName="Ready",
                Dimensions=DIMS,
                Statistic="Minimum",
                Period=60,
                EvaluationPeriods=5,
                Threshold=1,
                ComparisonOperator="LessThanThreshold",
                TreatMissingData="breaching",
            ),
        },
        "Outputs": {
            "DashboardUrl": {
                "Description": "The dashboard (and /graphql) from AllowedCidr",
                "Value": {"Fn::Sub": "http://${Instance.PublicDnsName}:${ApiPort}/"},
            },
            "InstanceId": {"Value": {"Ref": "Instance"}},
            "DataBucketName": {"Value": {"Ref": "DataBucket"}},
            "LogGroupName": {"Value": {"Ref": "LogGroup"}},
            "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        },
    }


def template_yaml() -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, str_presenter)
    Dumper.ignore_aliases = lambda self, data: True  # type: ignore[method-assign]
    head = (
        "# Generated by deploy/ec2/render.py from deploy/ec2/src and iam-policy.json: edit those.\n"
    )
    return head + yaml.dump(template(), Dumper=Dumper, sort_keys=False, width=100)


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    return {USER_DATA: user_data(), TEMPLATE: template_yaml()}


def _values(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"render.py: --set expects NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=["all", "user-data", "config"], default="all")
    parser.add_argument("--check", action="store_true", help="fail if generated files are stale")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    try:
        if args.what == "user-data":
            sys.stdout.write(sub(user_data(), _values(args.set)))
            return 0
        if args.what == "config":
            sys.stdout.write(sub((SRC / "tickserver.toml").read_text(), _values(args.set)))
            return 0
    except KeyError as exc:
        print(f"render.py: {exc.args[0]}", file=sys.stderr)
        return 2
    stale = []
    for path, text in outputs().items():
        if len(text.encode()) and path == USER_DATA and len(text.encode()) > USER_DATA_LIMIT:
            print(f"render.py: {path.name} is {len(text.encode())} bytes, over EC2's limit")
            return 1
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
    if stale:
        print(f"render.py: out of date: {', '.join(stale)}; run python deploy/ec2/render.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
