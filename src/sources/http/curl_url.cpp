#include "sources/http/curl_url.hpp"

namespace credkit::detail {

CurlUrl parse_curl_url(const std::string& text, unsigned int flags, CURLUcode* rc) {
  CurlUrl url(curl_url(), &curl_url_cleanup);
  const CURLUcode result = url ? curl_url_set(url.get(), CURLUPART_URL, text.c_str(), flags) : CURLUE_OUT_OF_MEMORY;
  if (rc) *rc = result;
  if (result != CURLUE_OK) url.reset();
  return url;
}

std::string url_part(CURLU* url, CURLUPart part) {
  char* value = nullptr;
  std::string out;
  if (curl_url_get(url, part, &value, 0) == CURLUE_OK && value) out = value;
  curl_free(value);
  return out;
}

}  // namespace credkit::detail
