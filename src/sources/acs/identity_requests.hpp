// credkit detail — building and reading ACS identity REST requests (pure functions).
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/sources/acs_connection_string.hpp>
#include <credkit/sources/acs_token_scope.hpp>
#include <credkit/sources/acs_user_and_token.hpp>

#include "sources/http/http_client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace credkit::acs::detail {

/// Throws Error(invalid_argument) unless `scopes` is non-empty and 60 <= lifetime <= 1440 min.
void validate_token_request(const std::vector<TokenScope>& scopes, std::chrono::minutes lifetime);

/// Throws Error(invalid_argument) for an empty or oversized user id.
void validate_user_id(const std::string& user_id);

/// The JSON body of a token request: {"<scopes_field>":[...],"expiresInMinutes":N}.
std::string token_request_body(const char* scopes_field, const std::vector<TokenScope>& scopes,
                               std::chrono::minutes lifetime);

/// A signed request to `endpoint + path + "?api-version=" + api_version`.
credkit::detail::HttpRequest make_signed_request(const ConnectionString& cs, const std::string& api_version,
                                                 std::string method, const std::string& path, std::string body,
                                                 std::chrono::system_clock::time_point now);

/// Reads {"token":..., "expiresOn":...}. Throws Error(invalid_response) naming `operation`.
AccessToken parse_access_token(const nlohmann::json& json, const char* operation);

/// Reads a response body as JSON. Throws Error(invalid_response) naming `operation`.
nlohmann::json parse_json_body(const std::string& body, const char* operation);

/// Reads {"identity":{"id":...}, "accessToken":{...}?}; the token is required when `with_token`.
UserAndToken parse_create_response(const std::string& body, bool with_token);

}  // namespace credkit::acs::detail
