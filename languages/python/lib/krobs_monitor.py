"""What Python krobs share beyond the run contract: environment helpers, logging, and the
`message` / `metric` events a script sends on purpose (`krobs-build schema monitor`).

The entrypoint /opt/krobs/bin/krobs-run already tells the monitor `start`, `finish` and
`failure`, forwards SIGTERM and passes the exit code through; a script only exits with its
documented code. Typical use::

    from krobs_monitor import KrobError, env_int, message, metric, run

    def main():
        ...                           # raise KrobError(text, details, exit_code) on failure
        return "done", {"count": 3}   # logged, and sent as a message

    if __name__ == "__main__":
        run(main)

Environment: KROBS_ID (set by krobs-run), KROBS_MONITOR_URL (unset: events go to stderr),
KROBS_MONITOR_TOKEN (sent as a bearer token when set), KROBS_MONITOR_TIMEOUT_SECONDS (one attempt, default 5; at most 3 attempts, 1 s then 2 s apart).
"""

import datetime
import json
import math
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path

EXIT_FAILURE = 1
EXIT_CONFIG = 2


class KrobError(Exception):
    """A failure the krob reports, with details and its exit code."""

    def __init__(self, message, details=None, exit_code=EXIT_FAILURE):
        super().__init__(message)
        self.details = details or {}
        self.exit_code = exit_code


class ConfigError(KrobError):
    """An invalid or missing environment variable."""

    def __init__(self, message, details=None):
        super().__init__(message, details, EXIT_CONFIG)


def krob_id():
    """The krob's id: KROBS_ID from krobs-run, else `python/<script stem>`."""
    return os.environ.get("KROBS_ID") or f"python/{Path(sys.argv[0] or 'unknown').stem}"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(text):
    """One timestamped line on stderr."""
    print(f"{_now()} [{krob_id()}] {text}", file=sys.stderr, flush=True)


# --- environment -----------------------------------------------------------------


def env_str(name, default=None, required=False):
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if required:
        raise ConfigError(f"environment variable `{name}` is required but not set")
    return default


def _env_number(name, default, parse, kind, minimum, maximum):
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"`{name}` must be {kind}, got `{raw}`") from None
    if value != value:  # NaN
        raise ConfigError(f"`{name}` must be {kind}, got `{raw}`")
    if minimum is not None and value < minimum:
        raise ConfigError(f"`{name}` must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"`{name}` must be at most {maximum}, got {value}")
    return value


def env_int(name, default, minimum=None, maximum=None):
    return _env_number(name, default, int, "an integer", minimum, maximum)


def env_float(name, default, minimum=None, maximum=None):
    return _env_number(name, default, float, "a number", minimum, maximum)


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"`{name}` must be 1 or 0 (or true/false), got `{raw}`")


def dry_run():
    """True when DRY_RUN asks the krob to report what it would change, and change nothing."""
    return env_bool("DRY_RUN", False)


# --- monitor ---------------------------------------------------------------------


def _post(kind, fields):
    """Send one event of `kind` with the fields `fields()` gives; never raises."""
    try:
        event = {"version": 1, "event": kind, "krob": krob_id(), "host": socket.gethostname(), "time": _now()}
        event.update(fields())
        body = json.dumps(event, default=str, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
        url = os.environ.get("KROBS_MONITOR_URL", "").strip()
        if not url:
            log(f"monitor: {body.decode('utf-8')}")
            return
        try:
            timeout = max(1.0, float(os.environ.get("KROBS_MONITOR_TIMEOUT_SECONDS", "5")))
        except ValueError:
            timeout = 5.0
        for attempt in (1, 2, 3):
            try:
                headers = {"Content-Type": "application/json"}
                token = os.environ.get("KROBS_MONITOR_TOKEN", "").strip()
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                request = urllib.request.Request(url, data=body, method="POST", headers=headers)
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    response.read()
                return
            except Exception as err:
                if attempt == 3 or getattr(err, "code", 500) < 500:
                    log(f"monitor: could not send the {kind} event ({err}); carrying on")
                    return
                time.sleep(attempt)
    except Exception as err:  # an event must never make the krob fail
        log(f"monitor: could not send the {kind} event ({err}); carrying on")


def _finite(value):
    number = float(value) if isinstance(value, float) else int(value)
    if not math.isfinite(number):
        raise ValueError(f"{value} is not a finite number")
    return number


def message(text, details=None):
    """A message for the monitor (Slack): text and a JSON object of details."""
    _post("message", lambda: {"text": str(text), "details": dict(details or {})})


def metric(name, value, type="gauge", tags=None):
    """A metric for the monitor (Datadog): `type` is "gauge" or "count"; tags map to strings."""
    tags = tags or {}
    fields = {"name": str(name), "type": type}
    _post("metric", lambda: {"metric": {**fields, "value": _finite(value), "tags": {str(k): str(v) for k, v in tags.items()}}})


def run(main):
    """Run ``main()``, which returns ``(text, details)``; log it and send it as a message.

    A ``KrobError`` is logged and sent the same way, and the script exits with its code.
    """
    try:
        text, details = main()
    except KrobError as err:
        log(f"FAILED: {err}")
        message(f"FAILED: {err}", err.details)
        sys.exit(err.exit_code)
    log(f"finished: {text}")
    message(text, details)
    sys.exit(0)
