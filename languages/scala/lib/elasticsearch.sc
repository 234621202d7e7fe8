// Minimal Elasticsearch REST client for Scala (Ammonite) krobs, on the requests-scala
// and ujson libraries that Ammonite bundles.
//
//   import $file.^.lib.elasticsearch, elasticsearch._
//   val es = Elasticsearch.fromEnv()
//   val settings = es.get("/_cluster/settings", Seq("flat_settings" -> "true"))
//
// Environment:
//   ELASTICSEARCH_URL              base URL (default http://localhost:9200)
//   ELASTICSEARCH_API_KEY          optional, sent as `Authorization: ApiKey ...`
//   ELASTICSEARCH_USERNAME         optional basic auth user (with ELASTICSEARCH_PASSWORD)
//   ELASTICSEARCH_PASSWORD
//   ELASTICSEARCH_TIMEOUT_SECONDS  default timeout of one request (default 60)
// For https with a private CA, give the JVM a trust store through JAVA_OPTS
// (-Djavax.net.ssl.trustStore=...).
//
// Credentials are never logged: URLs are logged without their user-info part.

import scala.util.control.NonFatal

/** A request to Elasticsearch that failed, with its status (0 when unreachable). */
class EsError(message: String, val status: Int, val body: String) extends RuntimeException(message)

/** Quote an index name or pattern for a URL path (keeps `*`, `,` and `-`). */
def quoteIndex(name: String): String =
  name.flatMap { c =>
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "*,-_.+".indexOf(c) >= 0)
      c.toString
    else
      c.toString.getBytes("UTF-8").map(b => "%%%02X".format(b & 0xff)).mkString
  }

/** The URL without user-info, safe to log. */
def redactUrl(url: String): String = url.replaceAll("//[^/@]*@", "//")

class Elasticsearch(val baseUrl: String, authorization: Option[String], defaultTimeoutMs: Int) {

  /** Send one request; returns (status, parsed JSON, or a JSON string holding the raw text).
    * Throws EsError for connection errors and any status outside 2xx not in `allow`.
    */
  def request(
      method: String,
      path: String,
      params: Seq[(String, String)] = Nil,
      body: Option[ujson.Value] = None,
      timeoutMs: Int = defaultTimeoutMs,
      allow: Set[Int] = Set.empty
  ): (Int, ujson.Value) = {
    val headers = Seq("Accept" -> "application/json", "Content-Type" -> "application/json") ++
      authorization.map(a => "Authorization" -> a).toSeq
    val data: requests.RequestBlob = body match {
      case Some(json) => ujson.write(json)
      case None => requests.RequestBlob.EmptyRequestBlob
    }
    val requester = method match {
      case "GET" => requests.get
      case "POST" => requests.post
      case "PUT" => requests.put
      case "DELETE" => requests.delete
      case other => throw new IllegalArgumentException(s"unsupported HTTP method `$other`")
    }
    val response =
      try {
        requester(
          baseUrl + path,
          params = params,
          headers = headers,
          data = data,
          readTimeout = timeoutMs,
          connectTimeout = math.min(timeoutMs, 30000),
          check = false
        )
      } catch {
        case NonFatal(e) =>
          throw new EsError(
            s"cannot reach Elasticsearch at ${redactUrl(baseUrl)} ($method $path): ${e.getClass.getSimpleName}: ${e.getMessage}",
            0,
            ""
          )
      }
    val status = response.statusCode
    val text = response.text()
    val payload: ujson.Value =
      if (text.trim.isEmpty) ujson.Null
      else
        try ujson.read(text)
        catch { case NonFatal(_) => ujson.Str(text) }
    if ((status >= 200 && status < 300) || allow.contains(status)) (status, payload)
    else {
      val reason = payload.objOpt.flatMap(_.get("error")).flatMap(_.objOpt) match {
        case Some(error) =>
          def field(name: String) = error.get(name).map(v => v.strOpt.getOrElse(v.toString)).getOrElse("")
          s": ${field("type")}: ${field("reason")}"
        case None => ""
      }
      throw new EsError(s"$method $path returned HTTP $status$reason", status, text.take(2000))
    }
  }

  def get(path: String, params: Seq[(String, String)] = Nil): ujson.Value =
    request("GET", path, params)._2

  def post(path: String, body: Option[ujson.Value] = None, params: Seq[(String, String)] = Nil): ujson.Value =
    request("POST", path, params, body)._2

  def put(path: String, body: ujson.Value, params: Seq[(String, String)] = Nil): ujson.Value =
    request("PUT", path, params, Some(body))._2

  def delete(path: String, params: Seq[(String, String)] = Nil): ujson.Value =
    request("DELETE", path, params)._2
}

object Elasticsearch {
  val DefaultUrl = "http://localhost:9200"

  /** A client configured from the environment; throws IllegalArgumentException on bad settings
    * (wrap the call in `configured(...)` from monitor.sc to report them as configuration errors).
    */
  def fromEnv(): Elasticsearch = {
    def env(name: String): Option[String] = sys.env.get(name).map(_.trim).filter(_.nonEmpty)
    val raw = env("ELASTICSEARCH_URL").getOrElse(DefaultUrl)
    val uri =
      try new java.net.URI(raw)
      catch { case NonFatal(_) => null }
    if (uri == null || !Set("http", "https").contains(String.valueOf(uri.getScheme)) || uri.getHost == null)
      throw new IllegalArgumentException(s"`ELASTICSEARCH_URL` must be an http(s) URL, got `${redactUrl(raw)}`")
    val fromUrl = Option(uri.getRawUserInfo).map { info =>
      val (user, password) = info.span(_ != ':')
      (java.net.URLDecoder.decode(user, "UTF-8"), java.net.URLDecoder.decode(password.drop(1), "UTF-8"))
    }
    val basic = env("ELASTICSEARCH_USERNAME")
      .map(user => (user, sys.env.getOrElse("ELASTICSEARCH_PASSWORD", "")))
      .orElse(fromUrl)
    val authorization = env("ELASTICSEARCH_API_KEY").map(key => s"ApiKey $key").orElse(basic.map {
      case (user, password) =>
        "Basic " + java.util.Base64.getEncoder.encodeToString(s"$user:$password".getBytes("UTF-8"))
    })
    val port = if (uri.getPort > 0) s":${uri.getPort}" else ""
    val base = s"${uri.getScheme}://${uri.getHost}$port${Option(uri.getRawPath).getOrElse("")}".replaceAll("/+$", "")
    val timeoutSeconds = env("ELASTICSEARCH_TIMEOUT_SECONDS").map { value =>
      try value.toInt
      catch { case _: NumberFormatException => throw new IllegalArgumentException(s"`ELASTICSEARCH_TIMEOUT_SECONDS` must be an integer, got `$value`") }
    }.getOrElse(60)
    if (timeoutSeconds < 1) throw new IllegalArgumentException("`ELASTICSEARCH_TIMEOUT_SECONDS` must be at least 1")
    new Elasticsearch(base, authorization, timeoutSeconds * 1000)
  }
}

/** Names in a comma-separated list setting, whether Elasticsearch returns it as a string or a list. */
def settingNames(value: Option[ujson.Value]): Seq[String] = value match {
  case Some(ujson.Str(s)) => s.split(",").map(_.trim).filter(_.nonEmpty).toSeq
  case Some(ujson.Arr(items)) => items.map(v => v.strOpt.getOrElse(v.toString).trim).filter(_.nonEmpty).toSeq
  case _ => Nil
}
