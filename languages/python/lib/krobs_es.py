"""Minimal Elasticsearch REST client for Python krobs (standard library only).

Environment:
    ELASTICSEARCH_URL              base URL (default http://localhost:9200)
    ELASTICSEARCH_API_KEY          optional, sent as `Authorization: ApiKey ...`
    ELASTICSEARCH_USERNAME         optional basic auth user (with ELASTICSEARCH_PASSWORD)
    ELASTICSEARCH_PASSWORD
    ELASTICSEARCH_CA_CERT          optional path to a CA bundle for https
    ELASTICSEARCH_TIMEOUT_SECONDS  default timeout of one request (default 60)

Credentials are never logged: URLs are logged without their user-info part.
"""

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

from krobs_monitor import ConfigError, KrobError, env_int

DEFAULT_URL = "http://localhost:9200"


class EsError(KrobError):
    """A request to Elasticsearch that failed, with its status (0 when unreachable)."""

    def __init__(self, message, status=0, body=None):
        super().__init__(message, {"status": status, "response": _short(body)})
        self.status = status
        self.body = body


def _short(body, limit=2000):
    if body is None:
        return None
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def redact(url):
    """The URL without user-info, safe to log."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def quote_index(name):
    """Quote an index name or pattern for a URL path (keeps `*`, `,` and `-`)."""
    return urllib.parse.quote(name, safe="*,-_.+")


class Elasticsearch:
    def __init__(self, base_url=None, timeout=None):
        raw = base_url or os.environ.get("ELASTICSEARCH_URL", "").strip() or DEFAULT_URL
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"`ELASTICSEARCH_URL` must be an http(s) URL, got `{redact(raw)}`")
        self.headers = {"Accept": "application/json"}
        username = os.environ.get("ELASTICSEARCH_USERNAME", "")
        password = os.environ.get("ELASTICSEARCH_PASSWORD", "")
        if parts.username and not username:  # user-info in the URL
            username = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
        api_key = os.environ.get("ELASTICSEARCH_API_KEY", "").strip()
        if api_key:
            self.headers["Authorization"] = f"ApiKey {api_key}"
        elif username:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self.headers["Authorization"] = f"Basic {token}"
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        self.base_url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout or env_int("ELASTICSEARCH_TIMEOUT_SECONDS", 60, minimum=1)
        ca = os.environ.get("ELASTICSEARCH_CA_CERT", "").strip()
        self.ssl_context = ssl.create_default_context(cafile=ca) if ca else None

    def request(self, method, path, params=None, body=None, timeout=None, allow=()):
        """Send one request; returns ``(status, parsed JSON or text)``.

        Raises EsError for connection errors and for any status outside 2xx that
        is not listed in ``allow``.
        """
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(
                request, timeout=timeout or self.timeout, context=self.ssl_context
            ) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except Exception as err:
            raise EsError(
                f"cannot reach Elasticsearch at {redact(self.base_url)} ({method} {path}): {err}"
            ) from None
        text = raw.decode("utf-8", errors="replace")
        try:
            payload = json.loads(text) if text.strip() else None
        except ValueError:
            payload = text
        if 200 <= status < 300 or status in allow:
            return status, payload
        reason = ""
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            error = payload["error"]
            reason = f": {error.get('type', '')}: {error.get('reason', '')}"
        raise EsError(f"{method} {path} returned HTTP {status}{reason}", status, payload)

    def get(self, path, params=None, **kw):
        return self.request("GET", path, params=params, **kw)[1]

    def post(self, path, body=None, params=None, **kw):
        return self.request("POST", path, params=params, body=body, **kw)[1]

    def put(self, path, body=None, params=None, **kw):
        return self.request("PUT", path, params=params, body=body, **kw)[1]

    def delete(self, path, params=None, **kw):
        return self.request("DELETE", path, params=params, **kw)[1]

    # --- shared helpers used by several krobs ---------------------------------

    def cluster_settings(self, include_defaults=False):
        params = {"flat_settings": "true"}
        if include_defaults:
            params["include_defaults"] = "true"
        settings = self.get("/_cluster/settings", params) or {}
        return {
            "persistent": settings.get("persistent", {}) or {},
            "transient": settings.get("transient", {}) or {},
            "defaults": settings.get("defaults", {}) or {},
        }
