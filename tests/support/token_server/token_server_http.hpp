// The token server's request handling without a socket, for fuzzing and unit tests. Separate
// from token_server.hpp so users of the server do not pull in Boost.Beast.
#pragma once

#include "token_server.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>

namespace credkit::samples {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

/// What `server` answers to `request`, exactly as on a connection except for timing: the
/// current fault applies and is counted, `slow` answers at once, `hang` returns nullopt (no
/// answer). A handler that throws gives the connection's 500. Needs no `start()`.
std::optional<HttpResponse> handle_request(TokenServer& server, const HttpRequest& request);

}  // namespace credkit::samples
