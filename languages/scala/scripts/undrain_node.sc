// ---
// owner = "search-infra (#search-oncall)"
// description = "Undoes a drain after maintenance: removes NODE_NAME from cluster.routing.allocation.exclude._name, persistent and transient, keeping any other excluded node, so shards can be allocated to it again. Env: ELASTICSEARCH_URL, NODE_NAME, DRY_RUN."
// timeout = "15m"
// retries = 2
// memory = "512Mi"
// ---

// The counterpart of the `python/drain_node` krob. Idempotent: when the node is not
// excluded at any level nothing is written, so running it twice is harmless. When
// the list becomes empty the setting is removed (set to null) rather than left as "".
//
// Exit codes: 0 done (or dry run), 1 failure, 2 bad configuration.

import $file.^.lib.monitor
import $file.^.lib.elasticsearch
import monitor.{configured, dryRun, envRequired, log, run, ConfigError, KrobError}
import elasticsearch.{settingNames, Elasticsearch}

val ExcludeKey = "cluster.routing.allocation.exclude._name"
val Levels = Seq("persistent", "transient")

def excludedAt(settings: ujson.Value, level: String): Seq[String] =
  settingNames(settings.objOpt.flatMap(_.get(level)).flatMap(_.objOpt).flatMap(_.get(ExcludeKey)))

run {
  val node = envRequired("NODE_NAME")
  if (node.exists(c => ",*? ".indexOf(c) >= 0))
    throw new ConfigError(s"`NODE_NAME` must be one exact node name, got `$node`")
  val dry = dryRun()
  val es = configured(Elasticsearch.fromEnv())

  val before = es.get("/_cluster/settings", Seq("flat_settings" -> "true"))
  val changes: Seq[(String, Seq[String])] = Levels.flatMap { level =>
    val names = excludedAt(before, level)
    if (names.contains(node)) Seq(level -> names.filterNot(_ == node)) else Nil
  }
  val details = ujson.Obj(
    "node" -> node,
    "dry_run" -> dry,
    "excluded_before" -> ujson.Obj(
      "persistent" -> ujson.Arr(excludedAt(before, "persistent").map(n => ujson.Str(n): ujson.Value): _*),
      "transient" -> ujson.Arr(excludedAt(before, "transient").map(n => ujson.Str(n): ujson.Value): _*)
    )
  )

  if (changes.isEmpty) {
    (s"node `$node` is not excluded; nothing to do", details)
  } else {
    val change = ujson.Obj()
    changes.foreach { case (level, remaining) =>
      val value: ujson.Value = if (remaining.isEmpty) ujson.Null else ujson.Str(remaining.mkString(","))
      change(level) = ujson.Obj(ExcludeKey -> value)
      log(s"${if (dry) "DRY_RUN: would set" else "setting"} $level `$ExcludeKey` to ${ujson.write(value)}")
    }
    details("update") = change
    if (dry) {
      (s"DRY_RUN: would remove `$node` from `$ExcludeKey` (${changes.map(_._1).mkString(", ")})", details)
    } else {
      es.put("/_cluster/settings", change)
      val after = es.get("/_cluster/settings", Seq("flat_settings" -> "true"))
      val still = Levels.filter(level => excludedAt(after, level).contains(node))
      if (still.nonEmpty)
        throw new KrobError(s"`$node` is still in `$ExcludeKey` (${still.mkString(", ")}) after the update", details)
      (s"node `$node` is no longer excluded from allocation", details)
    }
  }
}
