// Prints ammonite.lock for an Ammonite release: every jar on its class path as coursier resolves
// `com.lihaoyi:ammonite_<scala>:<ammonite>`, as `<sha256>  <path in the Maven repository>`.
// Not part of the image (.dockerignore): run it in the Scala runtime, with a network and
// coursier online (the image sets COURSIER_MODE=offline), from MAVEN_REPOSITORY (default Maven
// Central); coursier checks each download against the repository's own checksum, into a cache
// of its own in /tmp that nothing else reads:
//
//   docker run --rm --network host -e COURSIER_MODE= -v "$PWD/languages/scala:/w:ro" \
//     [-e MAVEN_REPOSITORY=...] <scala runtime> amm --silent /w/lock.sc 3.0.3 2.13.17 \
//     > languages/scala/ammonite.lock
//
// then review the diff and change the Dockerfile's comments if the version changed.

import coursierapi.{Cache, Dependency, Fetch, MavenRepository}
import scala.jdk.CollectionConverters._

@main
def main(ammonite: String, scala: String): Unit = {
  val repository = sys.env.getOrElse("MAVEN_REPOSITORY", "https://repo1.maven.org/maven2").stripSuffix("/")
  val cache = java.nio.file.Files.createTempDirectory("lock-coursier-cache").toFile
  val fetched = Fetch
    .create()
    .withRepositories(MavenRepository.of(repository))
    .withCache(Cache.create().withLocation(cache))
    .addDependencies(Dependency.of("com.lihaoyi", s"ammonite_$scala", ammonite))
    .fetchResult()
    .getArtifacts
    .asScala
    .toSeq
  def sha256(file: java.io.File): String =
    java.security.MessageDigest
      .getInstance("SHA-256")
      .digest(java.nio.file.Files.readAllBytes(file.toPath))
      .map(b => f"${b & 0xff}%02x")
      .mkString
  val lines = fetched.map { entry =>
    val url = entry.getKey.getUrl
    if (!url.startsWith(repository + "/"))
      sys.error(s"coursier fetched $url, which is not in $repository: check MAVEN_REPOSITORY")
    url.stripPrefix(repository + "/") -> sha256(entry.getValue)
  }.sorted
  println(s"""# Ammonite $ammonite for Scala $scala and every jar on its class path, as coursier resolves
             |# `com.lihaoyi:ammonite_$scala:$ammonite`: the sha256 of each jar, then its path in a Maven
             |# repository (the format of `sha256sum`). The Dockerfile fetches exactly these files from
             |# MAVEN_REPOSITORY (Maven Central unless a build argument names a mirror) and refuses the build
             |# when one of them does not hash to the sha256 pinned here. To change the version, regenerate
             |# this file with `lock.sc` (README, "Scala").""".stripMargin)
  lines.foreach { case (path, sum) => println(s"$sum  $path") }
}
