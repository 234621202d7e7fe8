// What Scala (Ammonite) krobs share beyond the run contract: environment helpers, logging, and
// the `message` / `metric` events a script sends on purpose (`krobs-build schema monitor`).
//
// The entrypoint /opt/krobs/bin/krobs-run already tells the monitor `start`, `finish` and
// `failure`, forwards SIGTERM and passes the exit code through; a script only exits with its
// documented code. A krob in scripts/ imports this file relative to itself:
//
//   import $file.^.lib.monitor, monitor._
//   run {
//     ...                                      // throw KrobError on failure
//     ("done", ujson.Obj("count" -> 3))        // logged, and sent as a message
//   }
//
// Environment: KROBS_ID (set by krobs-run), KROBS_MONITOR_URL (unset: events go to stderr),
// KROBS_MONITOR_TOKEN (sent as a bearer token when set), KROBS_MONITOR_TIMEOUT_SECONDS (one attempt, default 5; at most 3 attempts, 1 s then 2 s apart).
//
// Uses only what Ammonite bundles: requests-scala and ujson.

import scala.util.control.NonFatal

val ExitFailure = 1
val ExitConfig = 2

/** A failure the krob reports, with details and its exit code. */
class KrobError(message: String, val details: ujson.Value = ujson.Obj(), val exitCode: Int = 1)
    extends RuntimeException(message)

/** An invalid or missing environment variable. */
class ConfigError(message: String) extends KrobError(message, ujson.Obj(), 2)

/** The krob's id, from krobs-run. */
def krobId: String = sys.env.get("KROBS_ID").filter(_.nonEmpty).getOrElse("scala/unknown")

def now: String = java.time.Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS).toString

def log(message: String): Unit = {
  System.err.println(s"$now [$krobId] $message")
  System.err.flush()
}

// --- environment -------------------------------------------------------------------

def envStr(name: String, default: String): String =
  sys.env.get(name).map(_.trim).filter(_.nonEmpty).getOrElse(default)

def envOpt(name: String): Option[String] =
  sys.env.get(name).map(_.trim).filter(_.nonEmpty)

def envRequired(name: String): String =
  envOpt(name).getOrElse(throw new ConfigError(s"environment variable `$name` is required but not set"))

def envInt(name: String, default: Int, min: Int = Int.MinValue, max: Int = Int.MaxValue): Int =
  envOpt(name) match {
    case None => default
    case Some(raw) =>
      val value =
        try raw.toInt
        catch { case _: NumberFormatException => throw new ConfigError(s"`$name` must be an integer, got `$raw`") }
      if (value < min) throw new ConfigError(s"`$name` must be at least $min, got $value")
      if (value > max) throw new ConfigError(s"`$name` must be at most $max, got $value")
      value
  }

def envBool(name: String, default: Boolean): Boolean =
  sys.env.get(name) match {
    case None => default
    case Some(raw) =>
      raw.trim.toLowerCase match {
        case "1" | "true" | "yes" | "on" => true
        case "" | "0" | "false" | "no" | "off" => false
        case _ => throw new ConfigError(s"`$name` must be 1 or 0 (or true/false), got `$raw`")
      }
  }

/** Evaluate `f`, turning an IllegalArgumentException (a helper's bad setting) into a ConfigError. */
def configured[T](f: => T): T =
  try f
  catch { case e: IllegalArgumentException => throw new ConfigError(e.getMessage) }

/** True when DRY_RUN asks the krob to report what it would change, and change nothing. */
def dryRun(): Boolean = envBool("DRY_RUN", false)

// --- monitor -----------------------------------------------------------------------

/** Send one event; never throws. */
def post(event: String, fields: (String, ujson.Value)*): Unit =
  try {
    val host = sys.env.getOrElse("HOSTNAME", java.net.InetAddress.getLocalHost.getHostName)
    val common = Seq[(String, ujson.Value)](
      "version" -> ujson.Num(1),
      "event" -> ujson.Str(event),
      "krob" -> ujson.Str(krobId),
      "host" -> ujson.Str(host),
      "time" -> ujson.Str(now)
    )
    val body = ujson.write(ujson.Obj.from(common ++ fields))
    val url = envStr("KROBS_MONITOR_URL", "")
    if (url.isEmpty) log(s"monitor: $body")
    else {
      val seconds = envOpt("KROBS_MONITOR_TIMEOUT_SECONDS").flatMap(_.toDoubleOption).getOrElse(5.0)
      val timeoutMs = (seconds.max(1.0) * 1000).toInt
      var problem = ""
      var attempt = 0
      var retry = true
      while (retry && attempt < 3) {
        if (attempt > 0) Thread.sleep(attempt * 1000L) // 1 s, then 2 s
        attempt += 1
        problem =
          try {
            val status = requests
              .post(
                url,
                data = body,
                headers = Seq("Content-Type" -> "application/json") ++
                  envOpt("KROBS_MONITOR_TOKEN").filter(_.nonEmpty).map(t => "Authorization" -> s"Bearer $t"),
                readTimeout = timeoutMs,
                connectTimeout = timeoutMs,
                check = false
              )
              .statusCode
            if (status / 100 == 2) "" else s"HTTP $status"
          } catch { case NonFatal(e) => s"${e.getClass.getSimpleName}: ${e.getMessage}" }
        retry = problem.nonEmpty && !problem.startsWith("HTTP 4")
      }
      if (problem.nonEmpty) log(s"monitor: could not send the $event event ($problem); carrying on")
    }
  } catch {
    case NonFatal(e) => log(s"monitor: could not send the $event event (${e.getMessage}); carrying on")
  }

/** A message for the monitor (Slack): text and a JSON object of details. */
def message(text: String, details: ujson.Value = ujson.Obj()): Unit =
  post("message", "text" -> text, "details" -> details)

/** A metric for the monitor (Datadog): `kind` is "gauge" or "count"; tags map to strings. */
def metric(name: String, value: Double, kind: String = "gauge", tags: Map[String, String] = Map.empty): Unit =
  post(
    "metric",
    "metric" -> ujson.Obj(
      "name" -> name,
      "value" -> value,
      "type" -> kind,
      "tags" -> ujson.Obj.from(tags.map { case (k, v) => k -> (ujson.Str(v): ujson.Value) })
    )
  )

/** Run `body`, which returns the text and details of its outcome: log it, send it as a message
  * and exit 0. A KrobError is logged and sent the same way, and the JVM exits with its code.
  */
def run(body: => (String, ujson.Value)): Nothing =
  try {
    val (text, details) = body
    log(s"finished: $text")
    message(text, details)
    sys.exit(0)
  } catch {
    case e: KrobError =>
      log(s"FAILED: ${e.getMessage}")
      message(s"FAILED: ${e.getMessage}", e.details)
      sys.exit(e.exitCode)
  }
