// credkit — the coroutine style of Fetcher, opt-in: this header is the only credkit header
// that includes <boost/asio/awaitable.hpp>, so builds without coroutine fetchers never parse it.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/fetcher.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>

namespace credkit {

/// The shape of a coroutine fetcher.
using CoroutineFetchFunction = std::function<boost::asio::awaitable<AccessToken>(FetchContext)>;

/// A coroutine fetcher: `function(context)` returns `boost::asio::awaitable<AccessToken>`,
/// spawned on the credential's executor (`FetchContext::executor()`) with the fetch's
/// cancellation slot bound to it. An exception the coroutine throws (or `function` throws
/// before returning it) fails the fetch. Throws `Error(errc::invalid_argument)` if `function`
/// is empty.
///
/// Pass parameters by value and keep the lambda a thin forwarder to a coroutine function: a
/// coroutine lambda's captures would dangle if the coroutine outlived the lambda.
Fetcher coroutine_fetcher(CoroutineFetchFunction function);

}  // namespace credkit
