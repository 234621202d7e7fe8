// The third-party libraries of the Scala krobs, one Ammonite `import $ivy` line each, e.g.
//   import $ivy.`com.github.scopt::scopt:4.1.0`
// A krob never downloads at run time: every library imported here is pinned, with every file
// coursier reads to resolve it, in dependencies.lock, fetched into the image at build time and
// resolved offline. After a change, re-lock with lock.sc (README, "Scala"); the build fails
// while this file and its lock disagree. A krob imports this file (`import $file.^.dependencies`)
// or a library of it (its own `import $ivy` line); a library declared nowhere here fails at once.
// Ammonite bundles what today's krobs use: requests-scala for HTTP, ujson for JSON, os-lib.
