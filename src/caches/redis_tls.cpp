#include "caches/redis_tls.hpp"

#include <credkit/core/error.hpp>

#include <openssl/err.h>

namespace credkit::detail {

std::string take_openssl_error(const std::string& fallback) {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;  // the last one is the most specific
  if (last == 0) return fallback;
  if (const char* reason = ERR_reason_error_string(last)) return reason;
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

SslCtxPtr make_redis_tls_context(const RedisTokenCacheOptions& o) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw_error(errc::tls_error, "cannot create a TLS context: " + take_openssl_error("out of memory"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Partial writes let a command be written in pieces across poll() waits.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

  if (o.tls_verify_peer) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!o.tls_ca_file.empty() || !o.tls_ca_path.empty()) {
      const char* file = o.tls_ca_file.empty() ? nullptr : o.tls_ca_file.c_str();
      const char* path = o.tls_ca_path.empty() ? nullptr : o.tls_ca_path.c_str();
      if (SSL_CTX_load_verify_locations(ctx.get(), file, path) != 1) {
        const std::string which = file ? "tls_ca_file (" + o.tls_ca_file + ")" : "tls_ca_path (" + o.tls_ca_path + ")";
        throw_error(errc::invalid_argument, "RedisTokenCacheOptions::" + which + " cannot be loaded: " +
                                                take_openssl_error("no certificates found"));
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
      throw_error(errc::tls_error, "cannot load the system's CA certificates: " + take_openssl_error("unknown error") +
                                       "; set RedisTokenCacheOptions::tls_ca_file");
    }
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }

  if (!o.tls_cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), o.tls_cert_file.c_str()) != 1)
      throw_error(errc::invalid_argument, "RedisTokenCacheOptions::tls_cert_file (" + o.tls_cert_file +
                                              ") cannot be loaded: " + take_openssl_error("not a PEM certificate"));
    // The key's path is named, never its content.
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      throw_error(errc::invalid_argument, "RedisTokenCacheOptions::tls_key_file (" + o.tls_key_file +
                                              ") cannot be loaded: " + take_openssl_error("not a PEM private key"));
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      throw_error(errc::invalid_argument, "RedisTokenCacheOptions::tls_key_file (" + o.tls_key_file +
                                              ") does not match tls_cert_file (" + o.tls_cert_file + ")");
  }
  return ctx;
}

}  // namespace credkit::detail
