// credkit bench — a bare loop of get_token() reads for instruction counting under
// valgrind --tool=callgrind (scripts/bench runs it twice with different counts and takes
// the difference, so set-up costs cancel out). Usage: credkit_bench_hot_path_driver READS
#include "bench_support.hpp"

#include <credkit/core/token_credential.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdlib>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const long reads = argc > 1 ? std::atol(argv[1]) : 100000;
  boost::asio::io_context io;
  credkit::TokenCredentialOptions o;
  o.initial_token = credkit::bench::make_token(std::chrono::system_clock::now() + 1h, 1);
  o.fetcher = credkit::Fetcher::async([](credkit::FetchContext, credkit::FetchCompletion c) {
    c.fail(credkit::errc::fetch_failed, "the benchmark's fetcher must not run");
  });
  auto cred = credkit::TokenCredential::create(io.get_executor(), std::move(o));
  std::size_t sum = 0;
  for (long i = 0; i < reads; ++i) {
    credkit::TokenHandle h = cred->get_token();
    sum += h.token().size();
  }
  return sum == 0 ? 1 : 0;
}
