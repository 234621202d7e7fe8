// Shared helper for Scala (Ammonite) krobs: logging, environment parsing and monitor reports.
//
// Every krob reports three kinds of event to the Krobs monitor service by POSTing
// JSON to $KROBS_MONITOR_URL:
//
//   {"krob": "scala/<script stem>", "event": "start" | "finish" | "failure",
//    "message": "...", "details": {...}}
//
// Monitoring must never make a krob fail: when KROBS_MONITOR_URL is unset the event
// is logged to stderr instead, and when the monitor cannot be reached the error is
// logged and the krob carries on.
//
// A krob in scripts/ imports this file relative to itself and hands `run` its own
// file name without `.sc` (Ammonite gives a script no portable way to learn it):
//
//   import $file.^.lib.monitor, monitor._
//   run("undrain_node") { _ =>
//     ...                                      // throw KrobError on failure
//     ("done", ujson.Obj("count" -> 3))        // message and details of the finish event
//   }
//
// Environment:
//   KROBS_MONITOR_URL              where to POST events (optional)
//   KROBS_MONITOR_TIMEOUT_SECONDS  timeout of one POST (default 5)
//
// Uses only what Ammonite bundles: requests-scala and ujson.

import scala.util.control.NonFatal

val Language = "scala"
val ExitFailure = 1
val ExitConfig = 2

/** A failure the krob reports to the monitor, with details and an exit code. */
class KrobError(message: String, val details: ujson.Value = ujson.Obj(), val exitCode: Int = 1)
    extends RuntimeException(message)

/** An invalid or missing environment variable. */
class ConfigError(message: String) extends KrobError(message, ujson.Obj(), 2)

private var currentKrob: String = Language + "/unknown"

def krobId: String = currentKrob

def log(message: String): Unit = {
  val now = java.time.Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS)
  System.err.println(s"$now [$currentKrob] $message")
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

/** Posts start/finish/failure events; never throws. */
class Monitor(val krob: String, val url: String, timeoutMs: Int) {

  /** POST one event. Returns true when the monitor accepted it. */
  def report(event: String, message: String, details: ujson.Value = ujson.Obj()): Boolean = {
    val body =
      try ujson.write(ujson.Obj("krob" -> krob, "event" -> event, "message" -> message, "details" -> details))
      catch {
        case NonFatal(e) =>
          log(s"monitor: could not encode $event event (${e.getMessage}); sending it without details")
          ujson.write(ujson.Obj("krob" -> krob, "event" -> event, "message" -> message, "details" -> ujson.Obj()))
      }
    if (url.isEmpty) {
      log(s"monitor: KROBS_MONITOR_URL is not set; $event event: $body")
      false
    } else {
      try {
        val response = requests.post(
          url,
          data = body,
          headers = Seq("Content-Type" -> "application/json", "User-Agent" -> s"krobs/$krob"),
          readTimeout = timeoutMs,
          connectTimeout = timeoutMs,
          check = false
        )
        if (response.statusCode >= 200 && response.statusCode < 300) true
        else {
          log(s"monitor: $event event refused with HTTP ${response.statusCode}; carrying on")
          false
        }
      } catch {
        case NonFatal(e) =>
          log(s"monitor: could not send $event event (${e.getClass.getSimpleName}: ${e.getMessage}); carrying on")
          false
      }
    }
  }

  def start(message: String, details: ujson.Value = ujson.Obj()): Boolean = report("start", message, details)
  def finish(message: String, details: ujson.Value = ujson.Obj()): Boolean = report("finish", message, details)
  def failure(message: String, details: ujson.Value = ujson.Obj()): Boolean = report("failure", message, details)
}

/** Run `body` with a Monitor, report start and then finish or failure, and exit the JVM.
  *
  * `stem` is the script's file name without `.sc`; the krob id is `scala/<stem>`.
  * `body` returns the message and details of the finish event. A KrobError becomes a
  * failure event with its details and exit code; any other exception a failure event
  * and exit code 1.
  */
def run(stem: String)(body: Monitor => (String, ujson.Value)): Nothing = {
  currentKrob = s"$Language/$stem"
  val timeoutMs =
    try { (envStr("KROBS_MONITOR_TIMEOUT_SECONDS", "5").toDouble * 1000).toInt }
    catch { case _: NumberFormatException => 5000 }
  val monitor = new Monitor(currentKrob, envStr("KROBS_MONITOR_URL", ""), timeoutMs)
  val dry: ujson.Value =
    try ujson.Bool(dryRun())
    catch { case _: ConfigError => sys.env.get("DRY_RUN").map(v => ujson.Str(v): ujson.Value).getOrElse(ujson.Null) }
  // SIGTERM (the Job's deadline passed, or the pod was evicted) runs the JVM's shutdown
  // hooks: report a failure unless the krob already reported how it ended.
  @volatile var ended = false
  @volatile var terminating = false
  sys.addShutdownHook {
    terminating = true
    if (!ended) {
      log("FAILED: terminated (deadline passed or pod evicted)")
      monitor.failure("terminated (deadline passed or pod evicted)", ujson.Obj())
    }
  }
  monitor.start("started", ujson.Obj("dry_run" -> dry))
  val outcome: Either[(String, ujson.Value, Int), (String, ujson.Value)] =
    try Right(body(monitor))
    catch {
      case e: KrobError => Left((e.getMessage, e.details, e.exitCode))
      case NonFatal(e) => Left((s"${e.getClass.getSimpleName}: ${e.getMessage}", ujson.Obj(), ExitFailure))
    }
  ended = true
  outcome match {
    case Right((message, details)) =>
      log(s"finished: $message")
      if (!terminating) monitor.finish(message, details)
      sys.exit(0)
    case Left((message, details, code)) =>
      log(s"FAILED: $message")
      if (!terminating) monitor.failure(message, details)
      sys.exit(code)
  }
}
