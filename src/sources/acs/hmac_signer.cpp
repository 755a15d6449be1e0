#include "sources/acs/hmac_signer.hpp"

#include "core/base64.hpp"
#include "sources/common/crypto.hpp"

namespace credkit::acs::detail {

std::string hmac_string_to_sign(std::string_view method, std::string_view path_and_query, std::string_view date,
                                std::string_view host, std::string_view content_sha256) {
  std::string s;
  s.reserve(method.size() + path_and_query.size() + date.size() + host.size() + content_sha256.size() + 4);
  s.append(method).append("\n").append(path_and_query).append("\n");
  s.append(date).append(";").append(host).append(";").append(content_sha256);
  return s;
}

HmacHeaders sign_request(std::string_view method, std::string_view host, std::string_view path_and_query,
                         std::string_view body, std::string_view date, std::string_view key) {
  HmacHeaders h;
  h.date = std::string(date);
  h.content_sha256 = credkit::detail::base64_encode(credkit::detail::sha256(body));
  const auto to_sign = hmac_string_to_sign(method, path_and_query, date, host, h.content_sha256);
  const auto signature = credkit::detail::base64_encode(credkit::detail::hmac_sha256(key, to_sign));
  h.authorization = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + signature;
  return h;
}

}  // namespace credkit::acs::detail
