// credkit detail — the sources' adapters from their own completions to a credential's fetch.
#pragma once

#include <credkit/core/fetcher.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <utility>

namespace credkit::detail {

/// The completion callback of a source's request, completing a credential's fetch: an error
/// fails it, else it succeeds with `token_of(result)` (the result itself by default).
template <typename Result, typename TokenOf = std::identity>
std::function<void(std::exception_ptr, Result)> completing_fetch(FetchCompletion completion, TokenOf token_of = {}) {
  // Shared: std::function needs a copyable callable, FetchCompletion is move-only.
  auto shared = std::make_shared<FetchCompletion>(std::move(completion));
  return [shared, token_of = std::move(token_of)](std::exception_ptr error, Result result) {
    if (error) return shared->fail(error);
    shared->succeed(token_of(std::move(result)));
  };
}

/// A fetcher whose token is made in place, without I/O: each fetch completes inline with
/// `make_token()`; what it throws fails the fetch.
template <typename MakeToken>
Fetcher local_token_fetcher(MakeToken make_token) {
  return Fetcher::async([make_token = std::move(make_token)](FetchContext, FetchCompletion completion) {
    completion.succeed(make_token());
  });
}

}  // namespace credkit::detail
