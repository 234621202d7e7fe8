#!/usr/bin/env python3
# ---
# owner = "search-infra (#search-oncall)"
# description = "Drains Elasticsearch node NODE_NAME of shards: adds it to cluster.routing.allocation.exclude._name (other excluded nodes are kept), then waits until the node holds no shards, for at most DRAIN_TIMEOUT_SECONDS (default 3600). Env: ELASTICSEARCH_URL, NODE_NAME, DRAIN_TIMEOUT_SECONDS, POLL_INTERVAL_SECONDS (default 30), DRY_RUN."
# timeout = "90m"
# retries = 2
# ---
"""Drain one Elasticsearch node before maintenance.

Idempotent: the node is added to the exclusion list only when it is not there yet,
so a second run (or a Kubernetes retry) just goes back to waiting. The exclusion
is written at the level where it is in force (transient overrides persistent), so
an exclusion set by hand in transient settings is not silently shadowed.

Undo with the `scala/undrain_node` krob once the maintenance is over.

Exit codes: 0 drained (or dry run), 1 failure or timeout, 2 bad configuration.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from krobs_es import Elasticsearch  # noqa: E402
from krobs_monitor import ConfigError, KrobError, dry_run, env_int, env_str, log, run  # noqa: E402

EXCLUDE_KEY = "cluster.routing.allocation.exclude._name"
ENABLE_KEY = "cluster.routing.allocation.enable"


def split_names(value):
    if value is None:
        return []
    if isinstance(value, list):
        items = value
    else:
        items = str(value).split(",")
    return [item.strip() for item in items if str(item).strip()]


def shards_on(es, node):
    """Shards allocated to, or relocating away from or onto, `node`."""
    rows = es.get(
        "/_cat/shards", {"format": "json", "h": "index,shard,prirep,state,node"}
    ) or []
    held = []
    for row in rows:
        field = row.get("node") or ""
        # A relocating shard reads "source -> 10.0.0.2 <node id> target".
        source, _, target = field.partition(" -> ")
        target_name = target.split()[-1] if target.split() else ""
        if source.strip() == node or target_name == node:
            held.append(f"{row.get('index')}[{row.get('shard')}]{row.get('prirep')}:{row.get('state')}")
    return held


def main():
    node = env_str("NODE_NAME", required=True)
    if any(ch in node for ch in ",*? "):
        raise ConfigError(f"`NODE_NAME` must be one exact node name, got `{node}`")
    timeout = env_int("DRAIN_TIMEOUT_SECONDS", 3600, minimum=0, maximum=86400)
    interval = env_int("POLL_INTERVAL_SECONDS", 30, minimum=1, maximum=3600)
    dry = dry_run()
    es = Elasticsearch()

    settings = es.cluster_settings()
    level = "transient" if EXCLUDE_KEY in settings["transient"] else "persistent"
    excluded = split_names(settings[level].get(EXCLUDE_KEY))
    allocation = settings["transient"].get(ENABLE_KEY) or settings["persistent"].get(ENABLE_KEY) or "all"
    if allocation != "all":
        log(f"warning: `{ENABLE_KEY}` is `{allocation}`; shards may not be able to move off `{node}`")

    nodes = [row.get("name") for row in es.get("/_cat/nodes", {"format": "json", "h": "name"}) or []]
    if node not in nodes:
        if node in excluded:
            return (
                f"node `{node}` is excluded and no longer in the cluster; nothing to do",
                {"node": node, "excluded": excluded, "level": level},
            )
        raise KrobError(
            f"node `{node}` is not in the cluster; check `NODE_NAME`",
            {"node": node, "nodes": sorted(n for n in nodes if n)},
        )

    details = {"node": node, "level": level, "dry_run": dry, "allocation_enable": allocation}
    if node in excluded:
        log(f"`{node}` is already in {level} `{EXCLUDE_KEY}` ({','.join(excluded)})")
    else:
        wanted = excluded + [node]
        if dry:
            log(f"DRY_RUN: would set {level} `{EXCLUDE_KEY}` to `{','.join(wanted)}`")
            details["would_exclude"] = wanted
        else:
            log(f"setting {level} `{EXCLUDE_KEY}` to `{','.join(wanted)}`")
            es.put("/_cluster/settings", {level: {EXCLUDE_KEY: ",".join(wanted)}})
            excluded = split_names(es.cluster_settings()[level].get(EXCLUDE_KEY))
            if node not in excluded:
                raise KrobError(
                    f"`{EXCLUDE_KEY}` does not list `{node}` after the update",
                    {**details, "excluded": excluded},
                )
    details["excluded"] = excluded

    held = shards_on(es, node)
    if dry:
        details["shards"] = len(held)
        return f"DRY_RUN: `{node}` holds {len(held)} shards; nothing changed", details

    deadline = time.monotonic() + timeout
    while held:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KrobError(
                f"timed out after {timeout}s: `{node}` still holds {len(held)} shards",
                {**details, "shards": len(held), "sample": held[:20]},
            )
        log(f"`{node}` still holds {len(held)} shards; next check in {interval}s")
        time.sleep(min(interval, remaining))
        held = shards_on(es, node)

    details["shards"] = 0
    return f"node `{node}` holds no shards and is drained", details


if __name__ == "__main__":
    run(main)
