// desktop_chat — two small service clients sharing one credential. Each request asks the
// credential for a token (cheap: a cached token is a pointer copy), checks it is not
// expired at the moment of use, and reports a rejected token with invalidate().
#pragma once

#include "service.hpp"
#include "timeline.hpp"

#include <credkit/credkit.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace desktop_chat {

/// What both clients share: the credential, the service and the bookkeeping.
class ServiceClient {
 public:
  ServiceClient(const char* name, std::shared_ptr<credkit::TokenCredential> credential,
                const SimulatedService& service, Timeline& timeline, Stats& stats)
      : name_(name), credential_(std::move(credential)), service_(service), timeline_(timeline), stats_(stats) {}

 protected:
  /// Puts `token` on one simulated request and returns the service's answer.
  Response transmit(const std::string& operation, const credkit::TokenHandle& token) {
    const auto now = std::chrono::system_clock::now();
    const bool expired = token.expires_on() <= now;
    const double left = std::chrono::duration<double>(token.expires_on() - now).count();
    stats_.requests_sent++;
    if (expired) stats_.expired_tokens_sent++;
    const Response r = service_.handle(token.token());
    char detail[64];
    std::snprintf(detail, sizeof detail, " (%.1fs left) -> %d %s", left, r.status, r.reason.c_str());
    timeline_.print(name_, operation, " with token #", stats_.serial_of(token.token()), detail,
                    expired ? "  <-- EXPIRED TOKEN SENT" : "");
    return r;
  }

  /// Reports a token the service rejected; the credential refreshes once however many
  /// clients report the same token.
  void report_rejected(const credkit::TokenHandle& token) {
    stats_.rejected_401++;
    const bool accepted = credential_->invalidate(token);
    (accepted ? stats_.invalidations_accepted : stats_.invalidations_ignored)++;
    timeline_.print(name_, "invalidate(token #", stats_.serial_of(token.token()), ") -> ",
                    accepted ? "refresh started" : "ignored (already replaced or being refreshed)");
  }

  void count(bool ok) { (ok ? stats_.requests_ok : stats_.requests_failed)++; }

  const char* name_;
  std::shared_ptr<credkit::TokenCredential> credential_;
  const SimulatedService& service_;
  Timeline& timeline_;
  Stats& stats_;
};

/// Sends chat messages from its own thread with the blocking get_token().
class ChatClient : public ServiceClient {
 public:
  using ServiceClient::ServiceClient;

  bool send_message(const std::string& text) {
    for (int attempt = 1;; ++attempt) {
      credkit::TokenHandle token;
      try {
        token = credential_->get_token();  // returns at once while the cached token is fresh
      } catch (const credkit::Error& e) {
        timeline_.print(name_, "no token: ", e.what());
        count(false);
        return false;
      }
      const Response r = transmit("send_message \"" + text + "\"", token);
      if (r.status == 401 && attempt == 1) {
        report_rejected(token);
        continue;  // one retry with the fresh token
      }
      count(r.status == 200);
      return r.status == 200;
    }
  }
};

/// Keeps a call alive from a coroutine with async_get_token(use_awaitable).
class CallingClient : public ServiceClient {
 public:
  using ServiceClient::ServiceClient;

  boost::asio::awaitable<bool> send_keep_alive(int sequence) {
    for (int attempt = 1;; ++attempt) {
      credkit::TokenHandle token;
      try {
        token = co_await credential_->async_get_token(boost::asio::use_awaitable);
      } catch (const credkit::Error& e) {
        timeline_.print(name_, "no token: ", e.what());
        count(false);
        co_return false;
      }
      const Response r = transmit("keep_alive #" + std::to_string(sequence), token);
      if (r.status == 401 && attempt == 1) {
        report_rejected(token);
        continue;
      }
      count(r.status == 200);
      co_return r.status == 200;
    }
  }
};

}  // namespace desktop_chat
