"""The Python peer handler: the module-level set-up a boto3 Lambda does
(Secrets Manager for the model key, DynamoDB for the store). Anthropic's
Python SDK is not in Debian, so the model call would go through urllib,
whose import the runtime loop already pays for. Only readiness is timed;
the handler answers without calling anything so no request leaves the
machine."""
import json
import sys

import boto3

secrets = boto3.client("secretsmanager")
dynamo = boto3.client("dynamodb")


def handler(event, context):
    return {
        "statusCode": 200,
        "body": json.dumps({
            "runtime": "python %d.%d" % sys.version_info[:2],
            "boto3": boto3.__version__,
            "clients": [type(secrets).__name__, type(dynamo).__name__],
        }),
    }
