// What the documentation's examples take from their surroundings, for the translation unit
// scripts/extract_examples.py generates: the headers they use, the aliases the guide states
// ("the snippets assume namespace asio = boost::asio; using namespace std::chrono_literals;"),
// and the names statement examples use without declaring them (declared here, never defined:
// the examples are compiled, not linked).
#pragma once

#include <credkit/caches.hpp>
#include <credkit/core/coroutine_fetcher.hpp>  // opt-in: the guide shows coroutine fetchers
#include <credkit/credkit.hpp>
#include <credkit/sources.hpp>
#include <credkit/testing/diagnostics_capture.hpp>
#include <credkit/testing/manual_clock.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A doctest-style check, as in the examples written for tests.
#define CHECK(...) static_cast<void>(__VA_ARGS__)

namespace credkit_examples {

// Any value of the app's own with an operator<< (a request, a response ...).
struct AppValue {};
std::ostream& operator<<(std::ostream& out, const AppValue& value);

extern asio::io_context io;
extern credkit::TokenCredentialOptions options;
extern credkit::Fetcher my_fetcher;
extern credkit::Fetcher my_token_service_fetcher;
extern std::string user_id;
extern std::string cs;  // a connection string
extern std::string client_secret;
extern std::string my_client_secret;
extern AppValue my_value;
extern AppValue request;

std::string read_secret(std::string_view name);
void run_code_under_test();
void run_the_code_under_test();

}  // namespace credkit_examples
