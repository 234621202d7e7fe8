#!/usr/bin/env ruby
# ---
# owner = "search-infra (#search-oncall)"
# description = "Deletes documents older than RETENTION_DAYS from the indices matching INDEX_PATTERN with _delete_by_query on TIMESTAMP_FIELD (default @timestamp), then waits for the task for at most TASK_TIMEOUT_SECONDS (default 10800). Env: ELASTICSEARCH_URL, INDEX_PATTERN, RETENTION_DAYS, TIMESTAMP_FIELD, TASK_TIMEOUT_SECONDS, POLL_INTERVAL_SECONDS (default 30), REQUESTS_PER_SECOND (optional throttle), DRY_RUN."
# schedule = "30 2 * * *"
# timeout = "4h"
# retries = 1
# ---

# Enforce retention inside long-lived indices.
#
# The cutoff is Elasticsearch date math, `now-<RETENTION_DAYS>d/d` (midnight UTC),
# so every document strictly older than that day is deleted. Idempotent: the run
# first counts what matches and does nothing when nothing does; deleting by query
# again deletes nothing more. A task that outlives TASK_TIMEOUT_SECONDS is cancelled
# (documents already deleted stay deleted) and the next run carries on.
#
# INDEX_PATTERN must be explicit: `*` and `_all` are refused.
#
# Exit codes: 0 done (or dry run), 1 failure or timeout, 2 bad configuration.

require_relative "../lib/krobs_monitor"
require_relative "../lib/krobs_es"

Krobs.run do
  pattern = Krobs.env_str("INDEX_PATTERN", required: true)
  if ["*", "_all"].include?(pattern) || pattern.split(",").any? { |p| p.strip.empty? || p.strip == "*" }
    raise Krobs::ConfigError, "`INDEX_PATTERN` must name indices explicitly, `#{pattern}` would match every index"
  end

  days = Krobs.env_int("RETENTION_DAYS", nil, min: 1, max: 36_500)
  raise Krobs::ConfigError, "environment variable `RETENTION_DAYS` is required but not set" if days.nil?

  field = Krobs.env_str("TIMESTAMP_FIELD", "@timestamp")
  task_timeout = Krobs.env_int("TASK_TIMEOUT_SECONDS", 10_800, min: 1)
  interval = Krobs.env_int("POLL_INTERVAL_SECONDS", 30, min: 1, max: 3600)
  rps = Krobs.env_int("REQUESTS_PER_SECOND", nil, min: 1)
  dry = Krobs.dry_run?
  es = Krobs::Elasticsearch.new

  query = { "range" => { field => { "lt" => "now-#{days}d/d" } } }
  cutoff = Time.at((Time.now.utc.to_i / 86_400 - days) * 86_400).utc.strftime("%Y-%m-%dT%H:%M:%SZ")
  target = "/#{Krobs::Elasticsearch.quote(pattern)}"
  scope = { "ignore_unavailable" => "true", "allow_no_indices" => "true" }
  details = { "pattern" => pattern, "field" => field, "older_than" => cutoff, "dry_run" => dry }

  count = es.post("#{target}/_count", { "query" => query }, scope)["count"].to_i
  details["matching"] = count
  Krobs.log("#{count} documents in `#{pattern}` have `#{field}` before #{cutoff}")
  next ["nothing to delete in `#{pattern}` before #{cutoff}", details] if count.zero?
  next ["DRY_RUN: would delete #{count} documents from `#{pattern}`", details] if dry

  params = scope.merge("conflicts" => "proceed", "wait_for_completion" => "false", "slices" => "auto")
  params["requests_per_second"] = rps.to_s if rps
  task = es.post("#{target}/_delete_by_query", { "query" => query }, params)["task"]
  raise Krobs::Error.new("_delete_by_query did not return a task", details) if task.to_s.empty?

  details["task"] = task
  Krobs.log("delete by query running as task #{task}")
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + task_timeout
  result = nil
  loop do
    state = es.get("/_tasks/#{task}")
    if state["completed"]
      result = state
      break
    end
    status = (state["task"] || {})["status"] || {}
    remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
    if remaining <= 0
      begin
        es.post("/_tasks/#{task}/_cancel")
        Krobs.log("cancelled task #{task}")
      rescue Krobs::EsError => e
        Krobs.log("could not cancel task #{task}: #{e.message}")
      end
      raise Krobs::Error.new("timed out after #{task_timeout}s with #{status['deleted'].to_i} of " \
                             "#{status['total'].to_i} documents deleted; task #{task} was cancelled",
                             details.merge("deleted" => status["deleted"].to_i))
    end
    Krobs.log("task #{task}: #{status['deleted'].to_i} of #{status['total'].to_i} deleted; next check in #{interval}s")
    sleep([interval, remaining].min)
  end

  if result["error"]
    raise Krobs::Error.new("delete by query failed: #{result['error']['type']}: #{result['error']['reason']}",
                           details.merge("error" => result["error"]))
  end
  response = result["response"] || {}
  failures = response["failures"] || []
  details["deleted"] = response["deleted"].to_i
  details["version_conflicts"] = response["version_conflicts"].to_i
  unless failures.empty?
    raise Krobs::Error.new("delete by query finished with #{failures.length} failures",
                           details.merge("failures" => failures.first(10)))
  end

  ["deleted #{details['deleted']} documents older than #{cutoff} from `#{pattern}`", details]
end
