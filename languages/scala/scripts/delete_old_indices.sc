// ---
// owner = "search-infra (#search-oncall)"
// description = "Deletes dated indices named INDEX_PREFIX followed by a date in DATE_FORMAT (default yyyy.MM.dd) when that date is more than RETENTION_DAYS days before today (UTC), always keeping the newest MIN_KEEP (default 1) and deleting at most MAX_DELETES_PER_RUN (default 30) per run. Env: ELASTICSEARCH_URL, INDEX_PREFIX, RETENTION_DAYS, DATE_FORMAT, MIN_KEEP, MAX_DELETES_PER_RUN, DRY_RUN."
// schedule = "15 1 * * *"
// timeout = "1h"
// retries = 1
// memory = "512Mi"
// ---

// Retention for time-based indices such as `logs-app-2024.05.01`. Only names that
// are exactly INDEX_PREFIX + a valid date are considered; anything else under the
// prefix (`logs-app-notadate`, `logs-application-...` for prefix `logs-app-`) is
// left alone. Indices are deleted one by one by exact name, oldest first.
//
// Idempotent: an index that is already gone (404) counts as deleted, and a second
// run finds nothing older than the cutoff. MIN_KEEP guards against emptying a data
// set whose ingestion stopped weeks ago.
//
// Exit codes: 0 done (or dry run), 1 a delete failed or Elasticsearch is unreachable,
// 2 bad configuration.

import $file.^.lib.monitor
import $file.^.lib.elasticsearch
import monitor.{configured, dryRun, envInt, envRequired, envStr, log, run, ConfigError, KrobError}
import elasticsearch.{quoteIndex, EsError, Elasticsearch}

import java.time.{LocalDate, ZoneOffset}
import java.time.format.DateTimeFormatter
import scala.util.Try

case class Dated(name: String, date: LocalDate)

run {
  val prefix = envRequired("INDEX_PREFIX")
  if (prefix.exists(c => "*?,\"\\/<>| #".indexOf(c) >= 0) || prefix.startsWith("_") || prefix.startsWith("-"))
    throw new ConfigError(s"`INDEX_PREFIX` must be a literal index name prefix, got `$prefix`")
  val days = envInt("RETENTION_DAYS", -1, min = 1, max = 36500)
  if (days < 0) throw new ConfigError("environment variable `RETENTION_DAYS` is required but not set")
  val pattern = envStr("DATE_FORMAT", "yyyy.MM.dd")
  val formatter =
    try DateTimeFormatter.ofPattern(pattern)
    catch { case e: IllegalArgumentException => throw new ConfigError(s"`DATE_FORMAT` `$pattern` is not a date pattern: ${e.getMessage}") }
  val minKeep = envInt("MIN_KEEP", 1, min = 0, max = 100000)
  val maxDeletes = envInt("MAX_DELETES_PER_RUN", 30, min = 1, max = 10000)
  val dry = dryRun()
  val es = configured(Elasticsearch.fromEnv())

  val today = LocalDate.now(ZoneOffset.UTC)
  val cutoff = today.minusDays(days.toLong)

  val listed: Seq[String] =
    try {
      es.get(
        s"/_cat/indices/${quoteIndex(prefix)}*",
        Seq("format" -> "json", "h" -> "index", "expand_wildcards" -> "open,closed")
      ).arr.toSeq.flatMap(_.objOpt.flatMap(_.get("index")).flatMap(_.strOpt))
    } catch {
      case e: EsError if e.status == 404 => Nil
    }

  // A date that parses and formats back to the same text, so "2024.02.30" is not "2024.02.29".
  def parseDate(text: String): Option[LocalDate] =
    Try(LocalDate.parse(text, formatter)).toOption.filter(date => formatter.format(date) == text)

  val dated = listed
    .filter(_.startsWith(prefix))
    .flatMap(name => parseDate(name.substring(prefix.length)).map(date => Dated(name, date)))
    .sortBy(d => (-d.date.toEpochDay, d.name))
  val kept = dated.take(minKeep)
  val expired = dated.drop(minKeep).filter(_.date.isBefore(cutoff)).sortBy(d => (d.date.toEpochDay, d.name))
  val chosen = expired.take(maxDeletes)
  if (expired.size > chosen.size) log(s"${expired.size} indices are expired; deleting the oldest ${chosen.size} this run")

  def names(items: Seq[Dated]): ujson.Value = ujson.Arr(items.map(d => ujson.Str(d.name): ujson.Value): _*)
  val details = ujson.Obj(
    "prefix" -> prefix,
    "cutoff" -> cutoff.toString,
    "dry_run" -> dry,
    "dated_indices" -> dated.size,
    "protected_newest" -> names(kept),
    "expired" -> expired.size
  )

  if (chosen.isEmpty) {
    (s"no index `$prefix<date>` is dated before $cutoff", details)
  } else if (dry) {
    chosen.foreach(d => log(s"DRY_RUN: would delete `${d.name}` (dated ${d.date})"))
    details("would_delete") = names(chosen)
    (s"DRY_RUN: would delete ${chosen.size} indices dated before $cutoff", details)
  } else {
    val deleted = scala.collection.mutable.ArrayBuffer.empty[Dated]
    val failed = scala.collection.mutable.ArrayBuffer.empty[(String, String)]
    chosen.foreach { d =>
      log(s"deleting `${d.name}` (dated ${d.date})")
      try {
        val (status, _) = es.request("DELETE", "/" + quoteIndex(d.name), allow = Set(404))
        if (status == 404) log(s"`${d.name}` was already gone")
        deleted += d
      } catch {
        case e: EsError if e.status != 0 =>
          log(s"could not delete `${d.name}`: ${e.getMessage}")
          failed += (d.name -> e.getMessage)
      }
    }
    details("deleted") = names(deleted.toSeq)
    details("failed") = ujson.Arr(failed.toSeq.map { case (name, error) =>
      ujson.Obj("index" -> name, "error" -> error): ujson.Value
    }: _*)
    if (failed.nonEmpty)
      throw new KrobError(s"could not delete ${failed.size} of ${chosen.size} expired indices", details)
    (s"deleted ${deleted.size} indices dated before $cutoff", details)
  }
}
