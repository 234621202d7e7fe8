# frozen_string_literal: true

# Shared helper for Ruby krobs: logging, environment parsing and monitor reports.
#
# Every krob reports three kinds of event to the Krobs monitor service by POSTing
# JSON to $KROBS_MONITOR_URL:
#
#   {"krob": "ruby/<script stem>", "event": "start" | "finish" | "failure",
#    "message": "...", "details": {...}}
#
# Monitoring must never make a krob fail: when KROBS_MONITOR_URL is unset the
# event is logged to stderr instead, and when the monitor cannot be reached the
# error is logged and the krob carries on.
#
# Typical use:
#
#   require_relative "../lib/krobs_monitor"
#   Krobs.run do |monitor|
#     ...                                  # raise Krobs::Error on failure
#     ["done", { "count" => 3 }]           # message and details of the finish event
#   end
#
# Environment:
#   KROBS_MONITOR_URL              where to POST events (optional)
#   KROBS_MONITOR_TIMEOUT_SECONDS  timeout of one POST (default 5)

require "json"
require "net/http"
require "time"
require "uri"

module Krobs
  LANGUAGE = "ruby"
  EXIT_FAILURE = 1
  EXIT_CONFIG = 2

  TRUE_WORDS = %w[1 true yes on].freeze
  FALSE_WORDS = ["", "0", "false", "no", "off"].freeze

  # A failure the krob reports to the monitor, with details and an exit code.
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

  # The krob's id, `ruby/<script stem>`, from the running script's file name.
  def krob_id(script = $PROGRAM_NAME)
    "#{LANGUAGE}/#{File.basename(script.to_s, '.*')}"
  end

  def log(message)
    warn "#{Time.now.utc.strftime('%Y-%m-%dT%H:%M:%SZ')} [#{krob_id}] #{message}"
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

    word = raw.strip.downcase
    return true if TRUE_WORDS.include?(word)
    return false if FALSE_WORDS.include?(word)

    raise ConfigError, "`#{name}` must be 1 or 0 (or true/false), got `#{raw}`"
  end

  # True when DRY_RUN asks the krob to report what it would change, and change nothing.
  def dry_run?
    env_bool("DRY_RUN", false)
  end

  # --- monitor ---------------------------------------------------------------

  # Posts start/finish/failure events; never raises.
  class Monitor
    attr_reader :krob, :url

    def initialize(krob: Krobs.krob_id, url: ENV.fetch("KROBS_MONITOR_URL", ""), timeout: nil)
      @krob = krob
      @url = url.to_s.strip
      @timeout = timeout || begin
        Float(ENV.fetch("KROBS_MONITOR_TIMEOUT_SECONDS", "5"))
      rescue ArgumentError
        5.0
      end
    end

    # POST one event. Returns true when the monitor accepted it.
    def report(event, message, details = {})
      body = encode(event, message, details)
      if @url.empty?
        Krobs.log("monitor: KROBS_MONITOR_URL is not set; #{event} event: #{body}")
        return false
      end
      uri = URI.parse(@url)
      http = Net::HTTP.new(uri.host, uri.port)
      http.use_ssl = uri.scheme == "https"
      http.open_timeout = @timeout
      http.read_timeout = @timeout
      http.write_timeout = @timeout if http.respond_to?(:write_timeout=)
      request = Net::HTTP::Post.new(uri.request_uri,
                                    "Content-Type" => "application/json",
                                    "User-Agent" => "krobs/#{@krob}")
      request.body = body
      response = http.request(request)
      return true if response.is_a?(Net::HTTPSuccess)

      Krobs.log("monitor: #{event} event refused with HTTP #{response.code}; carrying on")
      false
    rescue StandardError => e
      Krobs.log("monitor: could not send #{event} event (#{e.class}: #{e.message}); carrying on")
      false
    end

    def start(message, details = {})
      report("start", message, details)
    end

    def finish(message, details = {})
      report("finish", message, details)
    end

    def failure(message, details = {})
      report("failure", message, details)
    end

    private

    def encode(event, message, details)
      JSON.generate("krob" => @krob, "event" => event, "message" => message.to_s, "details" => details || {})
    rescue StandardError => e
      Krobs.log("monitor: could not encode #{event} event (#{e.message}); sending it without details")
      JSON.generate("krob" => @krob, "event" => event, "message" => message.to_s.scrub, "details" => {})
    end
  end

  # Run the block with a Monitor, report start and then finish or failure, and exit.
  # The block returns [message, details] for the finish event.
  def run
    monitor = Monitor.new
    dry = begin
      dry_run?
    rescue ConfigError
      ENV["DRY_RUN"]
    end
    begin
      monitor.start("started", { "dry_run" => dry })
      result = yield monitor
      message, details = result.is_a?(Array) ? result : [result || "finished", {}]
    rescue Error => e
      log("FAILED: #{e.message}")
      monitor.failure(e.message, e.details)
      exit(e.exit_code)
    rescue SignalException => e
      # SIGTERM: the Job's deadline passed or the pod was evicted; SIGINT: interrupted.
      message = "terminated by #{e.signm}"
      message += " (deadline passed or pod evicted)" if e.signm == "SIGTERM"
      log("FAILED: #{message}")
      monitor.failure(message, {})
      exit(128 + e.signo)
    rescue StandardError => e
      log("FAILED: unexpected #{e.class}: #{e.message}")
      monitor.failure("unexpected #{e.class}: #{e.message}", {})
      exit(EXIT_FAILURE)
    end
    log("finished: #{message}")
    monitor.finish(message, details || {})
    exit(0)
  end
end
