// credkit internal — URLs parsed by libcurl's URL API (CURLU), read part by part.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

namespace credkit::detail {

using CurlUrl = std::unique_ptr<CURLU, decltype(&curl_url_cleanup)>;

/// `text` parsed by libcurl with `flags` (CURLU_*), or null when it does not parse; `rc` (if
/// given) receives why (CURLUE_OUT_OF_MEMORY when no handle could be made).
CurlUrl parse_curl_url(const std::string& text, unsigned int flags = 0, CURLUcode* rc = nullptr);

/// One part of a parsed URL, "" when it has none.
std::string url_part(CURLU* url, CURLUPart part);

}  // namespace credkit::detail
