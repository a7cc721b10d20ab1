"""Schemathesis hooks for scripts/schemathesis: the daemon's own error-format check.

Loaded through `SCHEMATHESIS_HOOKS`; the check is enabled by naming it in `--checks`.
"""

import json

import schemathesis

PROBLEM_TYPE_PREFIX = "https://acp-bridge.dev/problems/"


@schemathesis.check
def problem_details(ctx, response, case):
    """Every 4xx and 5xx is an RFC 9457 problem: `application/problem+json` with type, title, status, detail."""
    status = response.status_code
    if status < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    essence = content_type.split(";")[0].strip().lower()
    if essence != "application/problem+json":
        raise AssertionError(
            f"{status} answered with content-type {content_type!r}, not application/problem+json;"
            f" body: {response.content[:200]!r}"
        )
    if case.method.upper() == "HEAD":
        return None  # no body to check
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{status} problem body is not JSON ({error}): {response.content[:200]!r}") from None
    if not isinstance(body, dict):
        raise AssertionError(f"{status} problem body is not a JSON object: {response.content[:200]!r}")
    missing = [key for key in ("type", "title", "status", "detail") if key not in body]
    if missing:
        raise AssertionError(f"{status} problem body lacks {', '.join(missing)}: {body!r}")
    if body["status"] != status:
        raise AssertionError(f"problem `status` is {body['status']!r} but the HTTP status is {status}")
    for key in ("type", "title", "detail"):
        if not isinstance(body[key], str) or not body[key]:
            raise AssertionError(f"{status} problem `{key}` is not a non-empty string: {body[key]!r}")
    if not body["type"].startswith(PROBLEM_TYPE_PREFIX):
        raise AssertionError(f"{status} problem `type` is not under {PROBLEM_TYPE_PREFIX}: {body['type']!r}")
    return None
