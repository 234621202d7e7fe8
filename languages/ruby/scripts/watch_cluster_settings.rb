#!/usr/bin/env ruby
# ---
# owner = "search-infra (#search-oncall)"
# description = "Compares the effective Elasticsearch cluster settings (transient over persistent over defaults) with an expected set and alerts through a failure event, exit code 3, when any drifted. Read-only. Env: ELASTICSEARCH_URL, EXPECTED_SETTINGS (JSON object of flat setting names to values, null meaning not set; a built-in baseline when unset)."
# schedule = "*/15 * * * *"
# timeout = "5m"
# retries = 0
# ---

# Catch settings left behind after maintenance or an incident: a node still in
# cluster.routing.allocation.exclude._name after a drain, allocation left at
# `primaries`, disk thresholds switched off, and so on.
#
# EXPECTED_SETTINGS example:
#   {"cluster.routing.allocation.enable": "all",
#    "cluster.routing.allocation.exclude._name": null,
#    "cluster.routing.allocation.disk.watermark.high": "90%"}
#
# Values are compared as strings ("true" equals true, "85" equals 85); a list is
# compared as a set of strings; null means the setting must be absent or empty.
# Transient settings are listed in the details as a warning (they vanish on a full
# cluster restart) but are not drift by themselves.
#
# Read-only, so idempotent and DRY_RUN changes nothing. Exit codes: 0 no drift,
# 3 drift found, 1 Elasticsearch unreachable or failing, 2 bad configuration.

require_relative "../lib/krobs_monitor"
require_relative "../lib/krobs_es"

EXIT_DRIFT = 3

DEFAULT_EXPECTED = {
  "cluster.routing.allocation.enable" => "all",
  "cluster.routing.rebalance.enable" => "all",
  "cluster.routing.allocation.exclude._name" => nil,
  "cluster.routing.allocation.disk.threshold_enabled" => "true",
  "action.destructive_requires_name" => "true"
}.freeze

def expected_settings
  raw = Krobs.env_str("EXPECTED_SETTINGS")
  return DEFAULT_EXPECTED if raw.nil?

  parsed = JSON.parse(raw)
  unless parsed.is_a?(Hash) && !parsed.empty?
    raise Krobs::ConfigError, "`EXPECTED_SETTINGS` must be a non-empty JSON object of setting names to values"
  end

  parsed.each do |key, value|
    next if value.nil? || [String, Numeric, TrueClass, FalseClass].any? { |t| value.is_a?(t) }
    next if value.is_a?(Array) && value.all? { |v| !v.is_a?(Hash) && !v.is_a?(Array) }

    raise Krobs::ConfigError, "`EXPECTED_SETTINGS` value of `#{key}` must be a string, number, boolean, list or null"
  end
  parsed
rescue JSON::ParserError => e
  raise Krobs::ConfigError, "`EXPECTED_SETTINGS` is not valid JSON: #{e.message.lines.first.to_s.strip}"
end

def normalise(value)
  case value
  when nil then nil
  when Array then value.map(&:to_s).sort
  when Float then value == value.floor ? value.to_i.to_s : value.to_s
  else value.to_s
  end
end

def matches?(expected, actual)
  if expected.nil?
    actual.nil? || actual == "" || actual == []
  elsif expected.is_a?(Array)
    actual_list = actual.is_a?(Array) ? actual : actual.to_s.split(",").map(&:strip).reject(&:empty?)
    normalise(expected) == normalise(actual_list)
  else
    !actual.nil? && normalise(expected) == normalise(actual)
  end
end

Krobs.run do
  expected = expected_settings
  es = Krobs::Elasticsearch.new
  settings = es.get("/_cluster/settings", { "flat_settings" => "true", "include_defaults" => "true" }) || {}
  levels = [%w[transient transient], %w[persistent persistent], %w[defaults default]]

  drift = []
  expected.each do |key, want|
    source, actual = "unset", nil
    levels.each do |level, label|
      values = settings[level] || {}
      next unless values.key?(key)

      source, actual = label, values[key]
      break
    end
    next if matches?(want, actual)

    drift << { "setting" => key, "expected" => want, "actual" => actual, "source" => source }
    Krobs.log("drift: `#{key}` is #{actual.to_json} (#{source}), expected #{want.to_json}")
  end

  transient = (settings["transient"] || {}).keys.sort
  Krobs.log("warning: transient settings are set: #{transient.join(', ')}") unless transient.empty?
  details = { "checked" => expected.size, "drift" => drift, "transient_settings" => transient }

  unless drift.empty?
    names = drift.map { |d| d["setting"] }
    raise Krobs::Error.new("cluster settings drifted: #{names.join(', ')}", details, EXIT_DRIFT)
  end

  ["#{expected.size} cluster settings match the expected values", details]
end
