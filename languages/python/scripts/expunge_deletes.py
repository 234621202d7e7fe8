#!/usr/bin/env python3
# ---
# owner = "search-infra (#search-oncall)"
# description = "Expunges deleted documents (force merge with only_expunge_deletes=true) from open indices matching INDEX_PATTERN (default *) whose deleted-docs ratio is at least MIN_DELETED_RATIO (default 0.2), worst first, at most MAX_INDICES_PER_RUN (default 10) per run. Env: ELASTICSEARCH_URL, INDEX_PATTERN, MIN_DELETED_RATIO, MIN_DELETED_DOCS (default 1000), MAX_INDICES_PER_RUN, FORCEMERGE_TIMEOUT_SECONDS (default 3600), DRY_RUN."
# schedule = "0 3 * * *"
# timeout = "3h"
# retries = 1
# ---
"""Reclaim space held by deleted documents.

The ratio of an index is docs.deleted / (docs.count + docs.deleted) from
`_cat/indices`. Indices that are closed, red, or under the thresholds are left
alone. Idempotent: an index that was merged no longer passes the threshold, so a
second run finds nothing (or only indices that got worse in between) to do.

Exit codes: 0 done (or dry run), 1 a merge failed or Elasticsearch is unreachable,
2 bad configuration.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from krobs_es import Elasticsearch, EsError, quote_index  # noqa: E402
from krobs_monitor import KrobError, dry_run, env_float, env_int, env_str, log, metric, run  # noqa: E402


def as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def candidates(es, pattern, min_ratio, min_deleted):
    try:
        rows = es.get(
            f"/_cat/indices/{quote_index(pattern)}",
            {
                "format": "json",
                "h": "index,status,health,docs.count,docs.deleted",
                "expand_wildcards": "open",
            },
        ) or []
    except EsError as err:
        if err.status == 404:  # a concrete index name that does not exist
            log(f"no index matches `{pattern}`")
            return [], 0
        raise
    found = []
    for row in rows:
        name, count, deleted = row.get("index"), as_int(row.get("docs.count")), as_int(row.get("docs.deleted"))
        if row.get("status", "open") != "open" or count is None or deleted is None:
            continue
        if row.get("health") == "red":
            log(f"skipping `{name}`: health is red")
            continue
        total = count + deleted
        ratio = deleted / total if total else 0.0
        if ratio >= min_ratio and deleted >= min_deleted:
            found.append({"index": name, "docs": count, "deleted": deleted, "ratio": round(ratio, 4)})
    found.sort(key=lambda item: (-item["deleted"], item["index"]))
    return found, len(rows)


def main():
    pattern = env_str("INDEX_PATTERN", "*")
    min_ratio = env_float("MIN_DELETED_RATIO", 0.2, minimum=0.0, maximum=1.0)
    min_deleted = env_int("MIN_DELETED_DOCS", 1000, minimum=0)
    limit = env_int("MAX_INDICES_PER_RUN", 10, minimum=1, maximum=1000)
    merge_timeout = env_int("FORCEMERGE_TIMEOUT_SECONDS", 3600, minimum=1)
    dry = dry_run()
    es = Elasticsearch()

    found, scanned = candidates(es, pattern, min_ratio, min_deleted)
    chosen = found[:limit]
    details = {
        "pattern": pattern,
        "min_deleted_ratio": min_ratio,
        "scanned": scanned,
        "over_threshold": len(found),
        "dry_run": dry,
    }
    if not chosen:
        return f"no index matching `{pattern}` has a deleted ratio of {min_ratio} or more", details
    if len(found) > limit:
        log(f"{len(found)} indices are over the threshold; merging the worst {limit} this run")

    if dry:
        for item in chosen:
            log(
                f"DRY_RUN: would expunge deletes on `{item['index']}` "
                f"(ratio {item['ratio']}, {item['deleted']} deleted)"
            )
        details["would_merge"] = chosen
        return f"DRY_RUN: would expunge deletes on {len(chosen)} indices", details

    merged, failed = [], []
    for item in chosen:
        name = item["index"]
        log(f"expunging deletes on `{name}` (ratio {item['ratio']}, {item['deleted']} deleted)")
        try:
            result = es.post(
                f"/{quote_index(name)}/_forcemerge",
                params={"only_expunge_deletes": "true"},
                timeout=merge_timeout,
            ) or {}
        except EsError as err:
            if err.status == 0:
                # Unreachable, or no answer within FORCEMERGE_TIMEOUT_SECONDS (the merge
                # then goes on inside Elasticsearch): stop rather than pile up merges.
                details.update({"merged": merged, "failed": failed, "stopped_at": name})
                raise KrobError(f"force merge of `{name}` did not complete: {err}", details) from None
            log(f"force merge of `{name}` failed: {err}")
            failed.append({"index": name, "error": str(err)})
            continue
        shard_failures = (result.get("_shards") or {}).get("failed", 0)
        if shard_failures:
            log(f"force merge of `{name}` failed on {shard_failures} shards")
            failed.append({"index": name, "error": f"{shard_failures} shards failed", "shards": result.get("_shards")})
        else:
            merged.append(item)

    details.update({"merged": merged, "failed": failed})
    metric("krobs.expunge_deletes.merged_indices", len(merged), "count", {"pattern": pattern})
    if failed:
        raise KrobError(f"force merge failed on {len(failed)} of {len(chosen)} indices", details)
    return f"expunged deletes on {len(merged)} indices", details


if __name__ == "__main__":
    run(main)
