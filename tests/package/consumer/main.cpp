// A user's program built against the installed credkit package.
#include <credkit/caches.hpp>   // every installed header compiles on its own, outside the tree
#include <credkit/credkit.hpp>
#include <credkit/sources.hpp>

#include <boost/asio/io_context.hpp>
#ifdef CONSUMER_WITH_PROMETHEUS
#include <credkit/prometheus/exporter.hpp>
#endif

#include <iostream>

int main() {
  using namespace std::chrono;
  credkit::TokenCredentialOptions options;
  options.mode = credkit::RefreshMode::on_demand;
  options.fetcher = credkit::Fetcher::blocking([](const credkit::FetchContext&) {
    return credkit::AccessToken{"opaque-token-from-the-package-test", system_clock::now() + hours(1)};
  });
  auto credential = credkit::TokenCredential::create(options);
  auto token = credential->get_token(seconds(10));
  std::cout << "consumer got " << token << '\n';
  boost::asio::io_context io;
  auto cache = credkit::MemoryTokenCache::create(io.get_executor());  // links a cache
  if (!cache) return 1;
#ifdef CONSUMER_WITH_PROMETHEUS
  auto exporter = credkit::prometheus::Exporter::create(std::make_shared<prometheus::Registry>());
  exporter->cache_lookup("memory", credkit::CacheLookup::hit);
  std::cout << "consumer linked credkit::prometheus\n";
#endif
  // Links both keychain backends (a static credkit needs libsecret and libkeyutils from the
  // package config); an empty application fails validation before any keychain is touched.
  for (auto load : {+[] { credkit::load_keychain_keys(credkit::SecretServiceKeyOptions{}); },
                    +[] { credkit::load_keychain_keys(credkit::KernelKeyringKeyOptions{}); }}) {
    try {
      load();
      return 1;
    } catch (const credkit::Error& e) {
      if (e.code() != credkit::errc::invalid_argument) return 1;
    }
  }
  return token.expires_on() > system_clock::now() ? 0 : 1;
}
