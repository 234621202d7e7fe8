// The tests' dependencies.sc (tests/it/krobs.rs): one small Scala library, not bundled with Ammonite.
import $ivy.`com.github.scopt::scopt:4.1.0`
