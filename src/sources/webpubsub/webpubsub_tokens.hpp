// credkit detail — Web PubSub token claims, URLs and :generateToken requests (pure).
#pragma once

#include <credkit/sources/webpubsub_client_access.hpp>
#include <credkit/sources/webpubsub_client_token_options.hpp>

#include "sources/http/http_client.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace credkit::webpubsub::detail {

/// Throws Error(invalid_argument) unless `hub` is 1-128 of [A-Za-z0-9_] starting with a letter.
void validate_hub(const std::string& hub);

/// Throws Error(invalid_argument) unless 1 min <= lifetime <= 365 days.
void validate_lifetime(std::chrono::minutes lifetime);

/// "{endpoint}{path_prefix}/{hub}" (the JWT audience).
std::string audience(const std::string& endpoint, const std::string& hub, ClientType type);

/// The client URL: the endpoint with http(s) -> ws(s), the client path and `?access_token=`.
std::string client_url(const std::string& endpoint, const std::string& hub, ClientType type, const std::string& token);

/// The HS256 client token.
std::string make_client_token(const std::string& endpoint, const std::string& hub, const std::string& key,
                              const ClientTokenOptions& options, std::chrono::system_clock::time_point now);

/// Reads a :generateToken answer (`{"token": "<JWT>"}`) into the token and its client URL.
/// `read_token` reads the token's expiry (empty: `parse_token` with default options).
/// Throws Error(invalid_response) naming what is wrong; never quotes the body.
ClientAccess parse_generate_token_response(const std::string& body, const std::string& endpoint,
                                           const std::string& hub, ClientType type,
                                           const std::function<AccessToken(const std::string&)>& read_token = {});

/// The :generateToken request (without the Authorization header).
credkit::detail::HttpRequest make_generate_token_request(const std::string& endpoint, const std::string& hub,
                                                         const ClientTokenOptions& options);

}  // namespace credkit::webpubsub::detail
