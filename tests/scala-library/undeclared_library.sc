// ---
// owner = "krobs tests"
// description = "A test krob importing a library dependencies.sc does not declare: it must fail at once, before any request. Env: ELASTICSEARCH_URL."
// timeout = "5m"
// memory = "512Mi"
// ---

import $ivy.`com.typesafe:config:1.4.3`
import $file.^.lib.elasticsearch
import elasticsearch.Elasticsearch

Elasticsearch.fromEnv().get("/_cluster/settings")
println(com.typesafe.config.ConfigFactory.empty())
