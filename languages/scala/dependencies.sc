// Third-party libraries for the Scala krobs, as Ammonite `import $ivy` lines with
// pinned versions, for example:
//
//   import $ivy.`com.github.tototoshi::scala-csv:1.3.10`
//
// Ammonite already bundles what today's krobs use (requests-scala for HTTP, ujson for
// JSON, os-lib), so nothing is listed on purpose. When the image is built with
// Ammonite, this file is run once if it has an `import $ivy` line, so that the
// artifacts are in the image's coursier cache ($COURSIER_CACHE). A krob that needs a
// library listed here imports this file relative to itself:
//
//   import $file.^.dependencies
