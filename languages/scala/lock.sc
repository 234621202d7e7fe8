// Prints the locks of the Scala runtime, as `<sha256>  <path in the Maven repository>` lines.
// Not part of the image (.dockerignore): run it in the Scala runtime, with a network and
// coursier online (the image sets COURSIER_MODE=offline), from MAVEN_REPOSITORY (default Maven
// Central); coursier checks each download against the repository's own checksum, into a cache
// of its own in /tmp that nothing else reads.
//
// ammonite.lock, every jar on Ammonite's class path as coursier resolves
// `com.lihaoyi:ammonite_<scala>:<ammonite>`:
//
//   docker run --rm --network host -e COURSIER_MODE= -e COURSIER_CACHE=/tmp/coursier -v "$PWD/languages/scala:/w:ro" \
//     [-e MAVEN_REPOSITORY=...] <scala runtime> amm --silent /w/lock.sc ammonite 3.0.3 2.13.17 \
//     > languages/scala/ammonite.lock
//
// dependencies.lock, every file coursier reads when Ammonite resolves the `import $ivy` lines
// of dependencies.sc (Ammonite itself runs the file, into an empty cache):
//
//   docker run --rm --network host -e COURSIER_MODE= -e COURSIER_CACHE=/tmp/coursier -v "$PWD/languages/scala:/w:ro" \
//     [-e MAVEN_REPOSITORY=...] <scala runtime> amm --silent /w/lock.sc dependencies /w/dependencies.sc \
//     > languages/scala/dependencies.lock
//
// then review the diff (and the Dockerfile's comments if Ammonite's version changed).

import coursierapi.{Cache, Dependency, Fetch, MavenRepository}
import scala.jdk.CollectionConverters._

val repository = sys.env.getOrElse("MAVEN_REPOSITORY", "https://repo1.maven.org/maven2").stripSuffix("/")

def sha256(file: java.io.File): String =
  java.security.MessageDigest
    .getInstance("SHA-256")
    .digest(java.nio.file.Files.readAllBytes(file.toPath))
    .map(b => f"${b & 0xff}%02x")
    .mkString

@main
def ammonite(ammonite: String, scala: String): Unit = {
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

@main
def dependencies(file: os.Path): Unit = {
  // The libraries as written in backquotes on `import $ivy` lines (what libraries.sh reads).
  val libraries = os.read.lines(file)
    .filter(_.trim.matches("""import\s+\$ivy\..*"""))
    .flatMap("`([^`]*)`".r.findAllMatchIn(_).map(_.group(1)))
    .distinct
    .sorted
  val work = os.temp.dir(prefix = "lock-dependencies")
  val cache = work / "coursier"
  // Ammonite runs the file itself, online, with nothing cached and only the repository: the
  // cache then holds exactly what its resolution read (java, not `amm`, whose check would
  // refuse libraries the image does not hold yet).
  os.proc("java", s"-Duser.home=$work", "-cp", "/opt/ammonite/lib/*", "ammonite.AmmoniteMain", "--silent", file)
    .call(
      env = Map(
        "HOME" -> work.toString,
        "COURSIER_CACHE" -> cache.toString,
        "COURSIER_MODE" -> "missing",
        "COURSIER_REPOSITORIES" -> repository
      ),
      stdout = os.Pipe,
      cwd = work
    )
  val uri = new java.net.URI(repository)
  val port = if (uri.getPort > 0) s"%3A${uri.getPort}" else ""
  val root = cache / os.RelPath(s"${uri.getScheme}/${uri.getHost}$port${uri.getPath}".stripSuffix("/"))
  val files = if (os.exists(root)) os.walk(root).filter(os.isFile) else Nil
  // What coursier reads offline: the POMs and the jars, not its markers (`.name.checked`),
  // the repository's checksums, nor the sources Ammonite asks for and does without.
  val kept = files.filter { f =>
    !f.last.startsWith(".") && !f.last.endsWith("-sources.jar") &&
    !Seq(".sha1", ".md5", ".sha256", ".sha512", ".asc").exists(f.last.endsWith)
  }
  val stray = if (os.exists(cache)) os.walk(cache).filter(os.isFile).filterNot(_.startsWith(root)) else Nil
  if (stray.nonEmpty) sys.error(s"coursier fetched ${stray.head.relativeTo(cache)}, which is not in $repository: check MAVEN_REPOSITORY")
  println("""# The libraries dependencies.sc imports (`# library` lines, as written there) and every file
            |# coursier reads to resolve them offline, as Ammonite resolves them: the sha256 of each file,
            |# then its path in a Maven repository (the format of `sha256sum`). The Dockerfile fetches
            |# exactly these files from MAVEN_REPOSITORY into the image's coursier cache and refuses the
            |# build when one does not hash to the sha256 pinned here, or when dependencies.sc imports other
            |# libraries than these. After changing dependencies.sc, regenerate this file with `lock.sc`
            |# (README, "Scala").""".stripMargin)
  libraries.foreach(l => println(s"# library $l"))
  kept.map(f => f.relativeTo(root).toString -> sha256(f.toIO)).sorted.foreach { case (path, sum) =>
    println(s"$sum  $path")
  }
}
