"""Shared helper for Python krobs: logging, environment parsing and monitor reports.

Every krob reports three kinds of event to the Krobs monitor service by POSTing
JSON to ``$KROBS_MONITOR_URL``::

    {"krob": "python/<script stem>", "event": "start" | "finish" | "failure",
     "message": "...", "details": {...}}

Monitoring must never make a krob fail: when ``KROBS_MONITOR_URL`` is unset the
event is logged to stderr instead, and when the monitor cannot be reached the
error is logged and the krob carries on.

Typical use::

    from krobs_monitor import ConfigError, KrobError, run

    def main(monitor):
        ...                          # do the work, raise KrobError on failure
        return "done", {"count": 3}  # message and details of the finish event

    if __name__ == "__main__":
        run(main)

Environment:
    KROBS_MONITOR_URL              where to POST events (optional)
    KROBS_MONITOR_TIMEOUT_SECONDS  timeout of one POST (default 5)
"""

import datetime
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

LANGUAGE = "python"
EXIT_FAILURE = 1
EXIT_CONFIG = 2

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class KrobError(Exception):
    """A failure the krob reports to the monitor, with details and an exit code."""

    def __init__(self, message, details=None, exit_code=EXIT_FAILURE):
        super().__init__(message)
        self.details = details or {}
        self.exit_code = exit_code


class TerminatedError(KrobError):
    """SIGTERM arrived: the Job's deadline passed or the pod is being evicted."""

    def __init__(self, signum):
        super().__init__(f"terminated by signal {signum} (deadline passed or pod evicted)", {}, 128 + signum)


class ConfigError(KrobError):
    """An invalid or missing environment variable."""

    def __init__(self, message, details=None):
        super().__init__(message, details, EXIT_CONFIG)


def krob_id(script=None):
    """The krob's id, `python/<script stem>`, from the running script's file name."""
    script = script or sys.argv[0] or "unknown"
    return f"{LANGUAGE}/{Path(script).stem}"


def log(message):
    """One timestamped line on stderr."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{now} [{krob_id()}] {message}", file=sys.stderr, flush=True)


# --- environment -----------------------------------------------------------------


def env_str(name, default=None, required=False):
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if required:
        raise ConfigError(f"environment variable `{name}` is required but not set")
    return default


def env_int(name, default, minimum=None, maximum=None):
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"`{name}` must be an integer, got `{raw}`") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"`{name}` must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"`{name}` must be at most {maximum}, got {value}")
    return value


def env_float(name, default, minimum=None, maximum=None):
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"`{name}` must be a number, got `{raw}`") from None
    if value != value:  # NaN
        raise ConfigError(f"`{name}` must be a number, got `{raw}`")
    if minimum is not None and value < minimum:
        raise ConfigError(f"`{name}` must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"`{name}` must be at most {maximum}, got {value}")
    return value


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"`{name}` must be 1 or 0 (or true/false), got `{raw}`")


def dry_run():
    """True when DRY_RUN asks the krob to report what it would change, and change nothing."""
    return env_bool("DRY_RUN", False)


# --- monitor ---------------------------------------------------------------------


class Monitor:
    """Posts start/finish/failure events; never raises."""

    def __init__(self, krob=None, url=None, timeout=None):
        self.krob = krob or krob_id()
        self.url = (os.environ.get("KROBS_MONITOR_URL", "") if url is None else url).strip()
        if timeout is None:
            try:
                timeout = float(os.environ.get("KROBS_MONITOR_TIMEOUT_SECONDS", "5"))
            except ValueError:
                timeout = 5.0
        self.timeout = timeout

    def report(self, event, message, details=None):
        """POST one event. Returns True when the monitor accepted it."""
        try:
            body = json.dumps(
                {
                    "krob": self.krob,
                    "event": event,
                    "message": str(message),
                    "details": details or {},
                },
                default=str,
            ).encode("utf-8")
        except Exception as err:  # details that cannot be serialised must not kill the krob
            log(f"monitor: could not encode {event} event ({err}); sending it without details")
            body = json.dumps(
                {"krob": self.krob, "event": event, "message": str(message), "details": {}}
            ).encode("utf-8")
        if not self.url:
            log(f"monitor: KROBS_MONITOR_URL is not set; {event} event: {body.decode('utf-8')}")
            return False
        try:
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": f"krobs/{self.krob}"},
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
            return True
        except TerminatedError:
            raise
        except urllib.error.HTTPError as err:
            log(f"monitor: {event} event refused with HTTP {err.code}; carrying on")
        except Exception as err:
            log(f"monitor: could not send {event} event ({err}); carrying on")
        return False

    def start(self, message, details=None):
        return self.report("start", message, details)

    def finish(self, message, details=None):
        return self.report("finish", message, details)

    def failure(self, message, details=None):
        return self.report("failure", message, details)


def run(main, krob=None):
    """Run ``main(monitor)``, report start and then finish or failure, and exit.

    ``main`` returns ``(message, details)`` for the finish event. A ``KrobError``
    becomes a failure event with its details and exit code; any other exception a
    failure event and exit code 1.
    """
    monitor = Monitor(krob)

    def terminated(signum, _frame):
        # Kubernetes sends SIGTERM when the Job's deadline passes or the pod is evicted.
        raise TerminatedError(signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        start_details = {"dry_run": dry_run()}
    except ConfigError:
        start_details = {"dry_run": os.environ.get("DRY_RUN")}
    try:
        monitor.start("started", start_details)
        result = main(monitor)
        message, details = result if isinstance(result, tuple) else (result or "finished", {})
    except KrobError as err:
        log(f"FAILED: {err}")
        monitor.failure(str(err), err.details)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        log("FAILED: interrupted")
        monitor.failure("interrupted", {})
        sys.exit(130)
    except Exception as err:  # anything unexpected is still reported
        log(f"FAILED: unexpected {type(err).__name__}: {err}")
        monitor.failure(f"unexpected {type(err).__name__}: {err}", {})
        sys.exit(EXIT_FAILURE)
    log(f"finished: {message}")
    monitor.finish(message, details)
    sys.exit(0)
