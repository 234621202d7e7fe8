// Third-party libraries for the Scala krobs would be listed here as Ammonite `import $ivy`
// lines, for a krob to import with `import $file.^.dependencies`. The runtime does not fetch
// libraries yet, and a krob never downloads at run time (coursier runs offline in the image),
// so the Dockerfile refuses an `import $ivy` line here. Ammonite bundles what today's krobs
// use: requests-scala for HTTP, ujson for JSON, os-lib.
