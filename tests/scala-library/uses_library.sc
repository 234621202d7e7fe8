// ---
// owner = "krobs tests"
// description = "A test krob on a library of dependencies.sc: parses OPTIONS (`--index NAME`) with scopt and counts the documents of that index. Env: ELASTICSEARCH_URL, OPTIONS."
// timeout = "5m"
// memory = "512Mi"
// ---

// tests/it/krobs.rs lays this file, with tests/scala-library/dependencies.sc and its lock, into a
// copy of the repository: scopt is no library Ammonite bundles, so it runs only when the image
// holds it.

import $file.^.dependencies
import $file.^.lib.monitor
import $file.^.lib.elasticsearch
import monitor.{configured, envStr, run, ConfigError}
import elasticsearch.{quoteIndex, Elasticsearch}

case class Options(index: String = "")

run {
  val builder = scopt.OParser.builder[Options]
  val parser = {
    import builder._
    scopt.OParser.sequence(opt[String]("index").required().action((name, o) => o.copy(index = name)))
  }
  val words = envStr("OPTIONS", "").split(' ').filter(_.nonEmpty).toSeq
  val options = scopt.OParser
    .parse(parser, words, Options())
    .getOrElse(throw new ConfigError(s"`OPTIONS` must be `--index NAME`, got `${words.mkString(" ")}`"))
  val es = configured(Elasticsearch.fromEnv())
  val count = es.get(s"/${quoteIndex(options.index)}/_count")("count").num.toLong
  (s"${options.index} holds $count documents", ujson.Obj("index" -> options.index, "count" -> count))
}
