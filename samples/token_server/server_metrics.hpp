// token_server's /metrics (--metrics-port): the server's request counters, and credkit's own
// metrics from a probe credential that keeps a token from this server fresh, as a client would.
#pragma once

#include "token_server.hpp"

#include <credkit/credkit.hpp>
#include <credkit/prometheus/exporter.hpp>
#include <credkit/sources/http_token_source.hpp>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

namespace token_server_sample {

/// `token_server_requests_total{route}`: the server's per-endpoint counters, read when scraped.
class RequestCounters : public prometheus::Collectable {
 public:
  explicit RequestCounters(const credkit::samples::TokenServer& server) : server_(server) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family;
    family.name = "token_server_requests_total";
    family.help = "Requests served (or failed by an injected fault), by route";
    family.type = prometheus::MetricType::Counter;
    for (const auto& [route, count] : server_.stats()) {
      prometheus::ClientMetric metric;
      metric.label = {{"route", route}};
      metric.counter.value = static_cast<double>(count);
      family.metric.push_back(std::move(metric));
    }
    return {std::move(family)};
  }

 private:
  const credkit::samples::TokenServer& server_;
};

/// The Exposer on 127.0.0.1:`port` with the request counters and a credkit Exporter, whose
/// probe credential ("probe") fetches `GET /chat/user/metrics-probe/token` from this server
/// and refreshes it before it expires: the credkit_* families show what a client sees.
class ServerMetrics {
 public:
  ServerMetrics(const credkit::samples::TokenServer& server, unsigned short port)
      : counters_(std::make_shared<RequestCounters>(server)),
        exporter_(credkit::prometheus::Exporter::create(registry_)),
        exposer_("127.0.0.1:" + std::to_string(port), 1) {
    exposer_.RegisterCollectable(counters_);
    exposer_.RegisterCollectable(registry_);
    exposer_.RegisterCollectable(exporter_);
    credkit::HttpTokenSourceOptions source;
    source.url = server.base_url() + "/chat/user/metrics-probe/token";
    source.response = credkit::HttpTokenResponse::acs();
    credkit::TokenCredentialOptions options;
    options.fetcher = credkit::HttpTokenSource(std::move(source)).fetcher();
    options.metrics = exporter_;
    options.metrics_name = "probe";
    probe_ = credkit::TokenCredential::create(std::move(options));
  }
  ~ServerMetrics() { probe_->close(); }

  /// The bound port (the one asked for, or the one picked for port 0).
  int port() const { return exposer_.GetListeningPorts().at(0); }

 private:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::shared_ptr<RequestCounters> counters_;
  std::shared_ptr<credkit::prometheus::Exporter> exporter_;
  prometheus::Exposer exposer_;
  std::shared_ptr<credkit::TokenCredential> probe_;
};

}  // namespace token_server_sample
