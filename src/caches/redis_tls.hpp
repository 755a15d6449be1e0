// credkit detail — the OpenSSL client context of a Redis token cache (built once per cache).
#pragma once

#include <credkit/caches/redis_token_cache.hpp>

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace credkit::detail {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

/// Builds the client context for `options` (TLS 1.2+, peer verification unless
/// `tls_verify_peer` is false, CA file/path or the system's default paths, optional client
/// certificate and key). Throws `Error(invalid_argument)` naming the option whose file cannot
/// be loaded, `Error(tls_error)` if OpenSSL fails otherwise.
SslCtxPtr make_redis_tls_context(const RedisTokenCacheOptions& options);

/// The reason of the most recent OpenSSL error on this thread (and clears the queue), or
/// `fallback` if there is none.
std::string take_openssl_error(const std::string& fallback);

}  // namespace credkit::detail
