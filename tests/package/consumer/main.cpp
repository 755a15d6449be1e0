// A user's program built against the installed credkit package.
#include <credkit/credkit.hpp>

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
  return token.expires_on() > system_clock::now() ? 0 : 1;
}
