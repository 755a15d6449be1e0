// desktop_chat — where tokens come from. The credential only sees a credkit::Fetcher, so
// swapping the in-process minter for the app's real token service (HTTP) changes this file
// alone.
#pragma once

#include "jwt.hpp"
#include "timeline.hpp"

#include <credkit/credkit.hpp>
#include <credkit/core/coroutine_fetcher.hpp>
#include <credkit/sources/http_token_source.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace desktop_chat {

/// An in-process "token service" that mints HS256 JWTs after a simulated round trip.
struct MintingSource {
  std::shared_ptr<const JwtMinter> minter;
  std::string subject = "8:acs:demo-user";
  std::chrono::seconds lifetime{12};
  std::chrono::milliseconds round_trip{120};
  /// Which fetch fails on purpose (to show the retry with back-off); 0: none.
  int fail_fetch_number = 3;
  Timeline* timeline = nullptr;
  Stats* stats = nullptr;
};

/// The coroutine behind the fetcher. It takes everything by value: a coroutine lambda's
/// captures would dangle if the coroutine outlived the lambda object.
inline boost::asio::awaitable<credkit::AccessToken> mint_after_round_trip(std::shared_ptr<const MintingSource> src,
                                                                          credkit::FetchContext ctx) {
  const int n = ++src->stats->fetches;
  src->timeline->print("fetcher", "fetch #", n, " started (reason: ", credkit::to_string(ctx.reason()),
                       ", attempt ", ctx.attempt(), ")");
  // The fetch's cancellation (close, fetch timeout) is bound to this coroutine by credkit,
  // so this wait ends early with operation_aborted if nobody wants the token any more.
  boost::asio::steady_timer round_trip(co_await boost::asio::this_coro::executor, src->round_trip);
  co_await round_trip.async_wait(boost::asio::use_awaitable);
  if (n == src->fail_fetch_number) {
    throw std::runtime_error("token service answered 503 Service Unavailable (simulated outage)");
  }
  const std::string jwt = src->minter->mint(src->subject, src->lifetime, static_cast<std::uint64_t>(n));
  src->stats->remember(jwt);
  co_return credkit::parse_token(jwt);  // the expiry comes from the JWT's exp claim
}

/// Style 3 of 3: a C++20 coroutine fetcher.
inline credkit::Fetcher make_minting_fetcher(MintingSource source) {
  auto src = std::make_shared<const MintingSource>(std::move(source));
  return credkit::coroutine_fetcher(
      [src](credkit::FetchContext ctx) { return mint_after_round_trip(src, std::move(ctx)); });
}

/// The same fetcher shape over HTTP: asks the app's token service at `url` (e.g. a local
/// token server) through credkit::HttpTokenSource, and numbers the tokens for the timeline.
inline boost::asio::awaitable<credkit::AccessToken> fetch_over_http(credkit::HttpTokenSource source, Timeline* timeline,
                                                                    Stats* stats, credkit::FetchContext ctx) {
  const int n = ++stats->fetches;
  timeline->print("fetcher", "fetch #", n, " started (reason: ", credkit::to_string(ctx.reason()), ", attempt ",
                  ctx.attempt(), ") GET ", source.options().url);
  // The fetch's cancellation reaches the transfer through the coroutine's cancellation state.
  credkit::AccessToken token = co_await source.async_fetch(boost::asio::use_awaitable);
  stats->remember(token.token);
  co_return token;
}

inline credkit::Fetcher make_http_fetcher(std::string url, credkit::HttpTokenResponse response, Timeline& timeline,
                                          Stats& stats) {
  credkit::HttpTokenSourceOptions options;
  options.url = std::move(url);
  options.response = std::move(response);
  credkit::HttpTokenSource source(std::move(options));  // throws invalid_argument / insecure_url
  return credkit::coroutine_fetcher([source, t = &timeline, s = &stats](credkit::FetchContext ctx) {
    return fetch_over_http(source, t, s, std::move(ctx));
  });
}

}  // namespace desktop_chat
