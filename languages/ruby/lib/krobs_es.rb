# frozen_string_literal: true

# Minimal Elasticsearch REST client for Ruby krobs (standard library only).
#
# Environment:
#   ELASTICSEARCH_URL              base URL (default http://localhost:9200)
#   ELASTICSEARCH_API_KEY          optional, sent as `Authorization: ApiKey ...`
#   ELASTICSEARCH_USERNAME         optional basic auth user (with ELASTICSEARCH_PASSWORD)
#   ELASTICSEARCH_PASSWORD
#   ELASTICSEARCH_CA_CERT          optional path to a CA bundle for https
#   ELASTICSEARCH_TIMEOUT_SECONDS  default timeout of one request (default 60)
#
# Credentials are never logged: URLs are logged without their user-info part.

require "json"
require "net/http"
require "openssl"
require "uri"
require_relative "krobs_monitor"

module Krobs
  # A request to Elasticsearch that failed, with its status (0 when unreachable).
  class EsError < Error
    attr_reader :status, :body

    def initialize(message, status = 0, body = nil)
      text = body.nil? || body.is_a?(String) ? body : JSON.generate(body)
      text = "#{text[0, 2000]}..." if text && text.length > 2000
      super(message, { "status" => status, "response" => text })
      @status = status
      @body = body
    end
  end

  # Elasticsearch client.
  class Elasticsearch
    DEFAULT_URL = "http://localhost:9200"

    attr_reader :base_url

    def initialize(url: nil, timeout: nil)
      raw = url || Krobs.env_str("ELASTICSEARCH_URL", DEFAULT_URL)
      begin
        uri = URI.parse(raw)
      rescue URI::InvalidURIError
        uri = nil
      end
      unless uri.is_a?(URI::HTTP) && uri.host && !uri.host.empty?
        raise ConfigError, "`ELASTICSEARCH_URL` must be an http(s) URL, got `#{Elasticsearch.redact(raw)}`"
      end

      @headers = { "Accept" => "application/json" }
      user = ENV.fetch("ELASTICSEARCH_USERNAME", "")
      password = ENV.fetch("ELASTICSEARCH_PASSWORD", "")
      if uri.user && user.empty?
        user = URI::DEFAULT_PARSER.unescape(uri.user)
        password = URI::DEFAULT_PARSER.unescape(uri.password.to_s)
      end
      api_key = ENV.fetch("ELASTICSEARCH_API_KEY", "").strip
      if !api_key.empty?
        @headers["Authorization"] = "ApiKey #{api_key}"
      elsif !user.empty?
        @headers["Authorization"] = "Basic #{["#{user}:#{password}"].pack('m0')}"
      end
      uri.user = nil
      uri.path = uri.path.sub(%r{/+\z}, "")
      uri.query = nil
      uri.fragment = nil
      @uri = uri
      @base_url = uri.to_s
      @timeout = timeout || Krobs.env_int("ELASTICSEARCH_TIMEOUT_SECONDS", 60, min: 1)
      @ca = Krobs.env_str("ELASTICSEARCH_CA_CERT")
    end

    def self.redact(url)
      url.to_s.sub(%r{//[^/@]*@}, "//")
    end

    # Quote an index name or pattern for a URL path (keeps `*`, `,` and `-`).
    def self.quote(name)
      name.to_s.gsub(/[^A-Za-z0-9*,\-_.+]/) { |c| c.bytes.map { |b| format("%%%02X", b) }.join }
    end

    # Send one request; returns [status, parsed JSON or text]. Raises EsError for
    # connection errors and any status outside 2xx that is not in `allow`.
    def request(method, path, params: nil, body: nil, timeout: nil, allow: [])
      target = @uri.path + path
      target += "?#{URI.encode_www_form(params)}" if params && !params.empty?
      klass = { "GET" => Net::HTTP::Get, "POST" => Net::HTTP::Post, "PUT" => Net::HTTP::Put,
                "DELETE" => Net::HTTP::Delete, "HEAD" => Net::HTTP::Head }.fetch(method)
      req = klass.new(target, @headers)
      unless body.nil?
        req["Content-Type"] = "application/json"
        req.body = JSON.generate(body)
      end
      begin
        http = Net::HTTP.new(@uri.host, @uri.port)
        http.use_ssl = @uri.scheme == "https"
        http.ca_file = @ca if @ca
        http.open_timeout = [timeout || @timeout, 30].min
        http.read_timeout = timeout || @timeout
        response = http.request(req)
      rescue StandardError => e
        raise EsError, "cannot reach Elasticsearch at #{@base_url} (#{method} #{path}): #{e.class}: #{e.message}"
      end
      status = response.code.to_i
      text = response.body.to_s
      payload = begin
        text.strip.empty? ? nil : JSON.parse(text)
      rescue JSON::ParserError
        text
      end
      return [status, payload] if (200..299).cover?(status) || allow.include?(status)

      reason = ""
      if payload.is_a?(Hash) && payload["error"].is_a?(Hash)
        reason = ": #{payload['error']['type']}: #{payload['error']['reason']}"
      end
      raise EsError.new("#{method} #{path} returned HTTP #{status}#{reason}", status, payload)
    end

    def get(path, params = nil, **kw)
      request("GET", path, params: params, **kw)[1]
    end

    def post(path, body = nil, params = nil, **kw)
      request("POST", path, params: params, body: body, **kw)[1]
    end

    def put(path, body = nil, params = nil, **kw)
      request("PUT", path, params: params, body: body, **kw)[1]
    end

    def delete(path, params = nil, **kw)
      request("DELETE", path, params: params, **kw)[1]
    end
  end
end
