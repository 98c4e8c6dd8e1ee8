"""A minimal Lambda runtime client for the Python peer, started by the
bootstrap script beside it: import the handler module (its import is the
set-up being timed), then serve invocations from the Runtime API at
AWS_LAMBDA_RUNTIME_API (the emulator's) with urllib. It stands in for the
managed runtime's own client, which Debian does not package."""
import json
import os
import sys
import traceback
import urllib.request

API = "http://%s/2018-06-01/runtime/" % os.environ["AWS_LAMBDA_RUNTIME_API"]


def call(method, route, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + route, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as res:
        return res.headers, res.read()


def error_body(e):
    return {"errorType": type(e).__name__, "errorMessage": str(e),
            "stackTrace": traceback.format_exception(e)}


def main():
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.path.dirname(os.path.abspath(__file__))))
    try:
        import handler
    except Exception as e:  # noqa: BLE001 - any import failure is an init error
        call("POST", "init/error", error_body(e))
        sys.exit(1)
    # Lambda freezes or kills the process between invocations; this loop
    # ends only when the harness kills it, as in the managed runtime.
    while True:
        headers, body = call("GET", "invocation/next")
        rid = headers["Lambda-Runtime-Aws-Request-Id"]
        try:
            result = handler.handler(json.loads(body), {"aws_request_id": rid})
            call("POST", "invocation/%s/response" % rid, result)
        except Exception as e:  # noqa: BLE001 - reported to the Runtime API
            call("POST", "invocation/%s/error" % rid, error_body(e))


if __name__ == "__main__":
    main()
