# frozen_string_literal: true

# What Ruby krobs share beyond the run contract: environment helpers, logging, and the
# `message` / `metric` events a script sends on purpose (`krobs-build schema monitor`).
#
# The entrypoint /opt/krobs/bin/krobs-run already tells the monitor `start`, `finish` and
# `failure`, forwards SIGTERM and passes the exit code through; a script only exits with its
# documented code. Typical use:
#
#   require_relative "../lib/krobs_monitor"
#   Krobs.run do
#     ...                               # raise Krobs::Error.new(text, details, code) on failure
#     ["done", { "count" => 3 }]        # logged, and sent as a message
#   end
#
# Environment: KROBS_ID (set by krobs-run), KROBS_MONITOR_URL (unset: events go to stderr),
# KROBS_MONITOR_TOKEN (sent as a bearer token when set), KROBS_MONITOR_TIMEOUT_SECONDS (one attempt, default 5; at most 3 attempts, 1 s then 2 s apart).

require "json"
require "net/http"
require "socket"
require "time"
require "uri"

module Krobs
  EXIT_FAILURE = 1
  EXIT_CONFIG = 2

  # A failure the krob reports, with details and its exit code.
  class Error < StandardError
    attr_reader :details, :exit_code

    def initialize(message, details = {}, exit_code = EXIT_FAILURE)
      super(message)
      @details = details || {}
      @exit_code = exit_code
    end
  end

  # An invalid or missing environment variable.
  class ConfigError < Error
    def initialize(message, details = {})
      super(message, details, EXIT_CONFIG)
    end
  end

  module_function

  # The krob's id: KROBS_ID from krobs-run, else `ruby/<script stem>`.
  def krob_id
    ENV.fetch("KROBS_ID", "").empty? ? "ruby/#{File.basename($PROGRAM_NAME.to_s, '.*')}" : ENV["KROBS_ID"]
  end

  def now
    Time.now.utc.strftime("%Y-%m-%dT%H:%M:%SZ")
  end

  def log(message)
    warn "#{now} [#{krob_id}] #{message}"
  end

  # --- environment -----------------------------------------------------------

  def env_str(name, default = nil, required: false)
    value = ENV.fetch(name, "").strip
    return value unless value.empty?
    raise ConfigError, "environment variable `#{name}` is required but not set" if required

    default
  end

  def env_int(name, default, min: nil, max: nil)
    raw = env_str(name)
    return default if raw.nil?

    value = Integer(raw, 10)
    raise ConfigError, "`#{name}` must be at least #{min}, got #{value}" if min && value < min
    raise ConfigError, "`#{name}` must be at most #{max}, got #{value}" if max && value > max

    value
  rescue ArgumentError
    raise ConfigError, "`#{name}` must be an integer, got `#{raw}`"
  end

  def env_bool(name, default = false)
    raw = ENV[name]
    return default if raw.nil?
    return true if %w[1 true yes on].include?(raw.strip.downcase)
    return false if ["", "0", "false", "no", "off"].include?(raw.strip.downcase)

    raise ConfigError, "`#{name}` must be 1 or 0 (or true/false), got `#{raw}`"
  end

  # True when DRY_RUN asks the krob to report what it would change, and change nothing.
  def dry_run?
    env_bool("DRY_RUN", false)
  end

  # --- monitor ---------------------------------------------------------------

  # A message for the monitor (Slack): text and a Hash of details.
  def message(text, details = {})
    post("message") { { "text" => text.to_s.scrub, "details" => details.to_h } }
  end

  # A metric for the monitor (Datadog): type "gauge" or "count"; tags map to strings.
  def metric(name, value, type = "gauge", tags = {})
    post("metric") do
      raise ArgumentError, "the value of metric `#{name}` is not a finite number" unless Float(value).finite?

      { "metric" => { "name" => name.to_s, "value" => value, "type" => type,
                      "tags" => tags.to_h.to_h { |k, v| [k.to_s, v.to_s] } } }
    end
  end

  # Send one event of `kind` with the fields the block gives; never raises.
  def post(kind)
    event = { "version" => 1, "event" => kind, "krob" => krob_id, "host" => Socket.gethostname, "time" => now }
    event.merge!(yield)
    body = JSON.generate(event)
    url = ENV.fetch("KROBS_MONITOR_URL", "").strip
    return log("monitor: #{body}") if url.empty?

    timeout = [Float(ENV.fetch("KROBS_MONITOR_TIMEOUT_SECONDS", "5"), exception: false) || 5.0, 1.0].max
    uri = URI.parse(url)
    headers = { "Content-Type" => "application/json" }
    token = ENV.fetch("KROBS_MONITOR_TOKEN", "").strip
    headers["Authorization"] = "Bearer #{token}" unless token.empty?
    problem = nil
    3.times do |i|
      sleep(i) if i.positive? # 1 s, then 2 s
      status = begin
        http = Net::HTTP.new(uri.host, uri.port)
        http.open_timeout = http.read_timeout = http.write_timeout = timeout
        http.post(uri.request_uri, body, headers).code.to_i
      rescue StandardError => e
        problem = "#{e.class}: #{e.message}"
        nil
      end
      return if status && (200..299).cover?(status)

      problem = "HTTP #{status}" if status
      break if status && status < 500
    end
    log("monitor: could not send the #{kind} event (#{problem}); carrying on")
  rescue StandardError => e # an event must never make the krob fail
    log("monitor: could not send the #{kind} event (#{e.class}: #{e.message.lines.first.to_s.strip}); carrying on")
  end

  # Run the block, which returns [text, details]: log it and send it as a message. A
  # Krobs::Error is logged and sent the same way, and the script exits with its code.
  def run
    text, details = yield
    log("finished: #{text}")
    message(text, details || {})
    exit(0)
  rescue Error => e
    log("FAILED: #{e.message}")
    message("FAILED: #{e.message}", e.details)
    exit(e.exit_code)
  end
end
