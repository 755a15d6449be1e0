#include "sources/agora/access_token2.hpp"

#include <credkit/core/error.hpp>
#include <credkit/sources/agora_access_token.hpp>

#include "core/base64.hpp"
#include "sources/common/crypto.hpp"
#include "sources/common/fetch_completion.hpp"
#include "core/secret_scrubber.hpp"

#include <zlib.h>

#include <limits>
#include <vector>

namespace credkit::agora {
namespace detail {
namespace {

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_string(std::string& out, std::string_view s) {
  put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s);
}

void put_privileges(std::string& out, const std::map<std::uint16_t, std::uint32_t>& privileges) {
  put_u16(out, static_cast<std::uint16_t>(privileges.size()));
  for (auto [k, v] : privileges) {
    put_u16(out, k);
    put_u32(out, v);
  }
}

[[noreturn]] void damaged(const std::string& what) {
  throw_error(errc::invalid_token, "invalid Agora AccessToken2: " + what);
}

// Reads little-endian fields, failing (with the field's name) instead of reading past the end.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  std::uint16_t u16(const char* field) {
    need(2, field);
    auto b = bytes(2);
    return static_cast<std::uint16_t>(b[0] | (b[1] << 8));
  }
  std::uint32_t u32(const char* field) {
    need(4, field);
    auto b = bytes(4);
    return static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
           (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
  }
  std::string string(const char* field) {
    const std::uint16_t len = u16(field);
    need(len, field);
    std::string s(data_.substr(pos_, len));
    pos_ += len;
    return s;
  }
  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return data_.size() - pos_; }

 private:
  void need(std::size_t n, const char* field) const {
    if (data_.size() - pos_ < n) truncated(field);
  }
  // Out of line: built inline into every reader, the message tripped g++ 12's -Warray-bounds
  // false positive on std::string's operator+.
  [[noreturn, gnu::cold, gnu::noinline]] static void truncated(const char* field) {
    std::string what = "truncated at ";
    what += field;
    damaged(what);
  }
  const unsigned char* bytes(std::size_t n) {
    auto p = reinterpret_cast<const unsigned char*>(data_.data() + pos_);
    pos_ += n;
    return p;
  }
  std::string_view data_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string signing_key(std::string_view app_certificate, std::uint32_t issue_ts, std::uint32_t salt) {
  std::string ts_key, salt_key;
  put_u32(ts_key, issue_ts);
  put_u32(salt_key, salt);
  credkit::detail::SecretString first(credkit::detail::hmac_sha256(ts_key, app_certificate));
  return credkit::detail::hmac_sha256(salt_key, first.get());
}

std::string zlib_compress(std::string_view data) {
  uLongf size = compressBound(static_cast<uLong>(data.size()));
  std::string out(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(data.data()),
                static_cast<uLong>(data.size()), Z_DEFAULT_COMPRESSION) != Z_OK) {
    throw_error(errc::crypto_error, "zlib compression of the Agora token failed");
  }
  out.resize(size);
  return out;
}

std::optional<std::string> zlib_decompress(std::string_view data, std::size_t max_output) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return std::nullopt;
  std::string out;
  char buf[4096];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  bool ok = false;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t produced = sizeof buf - zs.avail_out;
    if (out.size() + produced > max_output) break;
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      ok = true;
      break;
    }
    if (rc != Z_OK) break;  // Z_BUF_ERROR: input ended early; Z_DATA_ERROR: damaged.
    if (zs.avail_in == 0 && produced == 0) break;
  }
  inflateEnd(&zs);
  if (!ok) return std::nullopt;
  return out;
}

DecodedToken decode_access_token(std::string_view token) {
  if (token.size() < 3 || token.substr(0, 3) != "007") damaged("it does not start with version \"007\"");
  if (token.size() > kMaxTokenChars) {
    damaged("it is longer than " + std::to_string(kMaxTokenChars) + " characters");
  }
  auto compressed = credkit::detail::base64_decode(token.substr(3));
  if (!compressed) damaged("the text after \"007\" is not valid base64");
  auto raw = zlib_decompress(*compressed, kMaxContentBytes);
  if (!raw) damaged("the payload is not valid zlib data (or inflates beyond 64 KiB)");

  DecodedToken out;
  Reader r(*raw);
  out.signature = r.string("signature");
  if (out.signature.size() != 32) damaged("the signature is not 32 bytes");
  const std::size_t content_start = r.position();
  auto& info = out.info;
  info.app_id = r.string("app id");
  if (info.app_id.empty()) damaged("the app id is empty");
  info.issue_ts = r.u32("issue time");
  info.expire = r.u32("expire");
  info.salt = r.u32("salt");
  const std::uint16_t count = r.u16("service count");
  for (std::uint16_t i = 0; i < count; ++i) {
    ServiceInfo service;
    service.type = r.u16("service type");
    switch (static_cast<ServiceType>(service.type)) {
      case ServiceType::rtc:
      case ServiceType::rtm:
      case ServiceType::fpa:
      case ServiceType::chat: break;
      default:
        info.services.push_back(std::move(service));
        info.services_complete = false;
        i = count - 1;  // Unknown layout: stop reading services.
        continue;
    }
    const std::uint16_t privileges = r.u16("privilege count");
    for (std::uint16_t p = 0; p < privileges; ++p) {
      const auto key = r.u16("privilege");
      service.privileges[key] = r.u32("privilege expire");
    }
    switch (static_cast<ServiceType>(service.type)) {
      case ServiceType::rtc:
        service.channel_name = r.string("RTC channel name");
        service.user_id = r.string("RTC uid");
        break;
      case ServiceType::rtm: service.user_id = r.string("RTM user id"); break;
      case ServiceType::chat: service.user_id = r.string("Chat user id"); break;
      default: break;
    }
    info.services.push_back(std::move(service));
  }
  if (info.services_complete && r.remaining() != 0) damaged("there are stray bytes after the services");
  out.content = raw->substr(content_start);
  using namespace std::chrono;
  info.issued_at = system_clock::time_point(seconds(info.issue_ts));
  info.expires_on = info.issued_at + seconds(info.expire);
  return out;
}

}  // namespace detail

struct AccessToken2::Data {
  std::string app_id;
  credkit::detail::SecretString certificate;
  std::uint32_t expire = 0;
  std::optional<std::uint32_t> issue_ts;
  std::optional<std::uint32_t> salt;
  // Packed service bodies (after the type), by service type: the builders pack in type order.
  std::map<std::uint16_t, std::string> services;
};

namespace {

std::uint32_t seconds_field(std::chrono::seconds s, const char* what) {
  if (s.count() < 0 || s.count() > std::numeric_limits<std::uint32_t>::max()) {
    throw_error(errc::invalid_argument, std::string("Agora token: ") + what + " is out of range");
  }
  return static_cast<std::uint32_t>(s.count());
}

void check_string(std::string_view s, const char* what) {
  if (s.size() > 65535) throw_error(errc::invalid_argument, std::string("Agora token: ") + what + " is too long");
}

}  // namespace

AccessToken2::AccessToken2(std::string app_id, std::string app_certificate, std::chrono::seconds expire)
    : data_(std::make_unique<Data>()) {
  credkit::detail::remember_secret(app_certificate);
  credkit::detail::SecretString cert(std::move(app_certificate));
  if (app_id.empty()) throw_error(errc::invalid_argument, "Agora token: the app id is empty");
  check_string(app_id, "the app id");
  if (cert.empty()) throw_error(errc::invalid_argument, "Agora token: the app certificate is empty");
  if (expire < std::chrono::seconds(1) || expire > std::chrono::hours(24)) {
    throw_error(errc::invalid_argument, "Agora token: expire must be 1 s to 24 h, got " +
                                            std::to_string(expire.count()) + " s");
  }
  data_->app_id = std::move(app_id);
  data_->certificate = std::move(cert);
  data_->expire = static_cast<std::uint32_t>(expire.count());
}

AccessToken2::AccessToken2(AccessToken2&&) noexcept = default;
AccessToken2& AccessToken2::operator=(AccessToken2&&) noexcept = default;
AccessToken2::~AccessToken2() = default;

AccessToken2& AccessToken2::issue_ts(std::uint32_t seconds) {
  data_->issue_ts = seconds;
  return *this;
}

AccessToken2& AccessToken2::salt(std::uint32_t salt) {
  data_->salt = salt;
  return *this;
}

AccessToken2& AccessToken2::add_chat_user(std::string user_uuid, std::chrono::seconds privilege_expire) {
  check_string(user_uuid, "the user UUID");
  if (user_uuid.empty()) throw_error(errc::invalid_argument, "Agora Chat user token: the user UUID is empty");
  std::string body;
  detail::put_privileges(body, {{static_cast<std::uint16_t>(ChatPrivilege::user),
                                 seconds_field(privilege_expire, "the privilege expire")}});
  detail::put_string(body, user_uuid);
  data_->services[static_cast<std::uint16_t>(ServiceType::chat)] = std::move(body);
  return *this;
}

AccessToken2& AccessToken2::add_chat_app(std::chrono::seconds privilege_expire) {
  std::string body;
  detail::put_privileges(body, {{static_cast<std::uint16_t>(ChatPrivilege::app),
                                 seconds_field(privilege_expire, "the privilege expire")}});
  detail::put_string(body, "");
  data_->services[static_cast<std::uint16_t>(ServiceType::chat)] = std::move(body);
  return *this;
}

AccessToken2& AccessToken2::add_rtc(std::string channel_name, std::string uid,
                                    const std::map<RtcPrivilege, std::chrono::seconds>& privileges) {
  check_string(channel_name, "the channel name");
  check_string(uid, "the uid");
  if (privileges.empty()) throw_error(errc::invalid_argument, "Agora RTC token: give at least one privilege");
  std::map<std::uint16_t, std::uint32_t> packed;
  for (auto [p, s] : privileges) packed[static_cast<std::uint16_t>(p)] = seconds_field(s, "a privilege expire");
  std::string body;
  detail::put_privileges(body, packed);
  detail::put_string(body, channel_name);
  detail::put_string(body, uid == "0" ? std::string() : uid);
  data_->services[static_cast<std::uint16_t>(ServiceType::rtc)] = std::move(body);
  return *this;
}

AccessToken2& AccessToken2::add_rtm(std::string user_id, std::chrono::seconds privilege_expire) {
  check_string(user_id, "the user id");
  std::string body;
  detail::put_privileges(body, {{1, seconds_field(privilege_expire, "the privilege expire")}});
  detail::put_string(body, user_id);
  data_->services[static_cast<std::uint16_t>(ServiceType::rtm)] = std::move(body);
  return *this;
}

std::string AccessToken2::build() const {
  if (data_->services.empty()) throw_error(errc::invalid_argument, "Agora token: add at least one service");
  std::uint32_t issue_ts = 0;
  if (data_->issue_ts) {
    issue_ts = *data_->issue_ts;
  } else {
    issue_ts = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  }
  std::uint32_t salt = 0;
  if (data_->salt) {
    salt = *data_->salt;
  } else {
    std::uint32_t r = 0;
    credkit::detail::random_bytes(std::span(reinterpret_cast<unsigned char*>(&r), sizeof r));
    salt = 1 + r % 99999999u;
  }
  std::string content;
  detail::put_string(content, data_->app_id);
  detail::put_u32(content, issue_ts);
  detail::put_u32(content, data_->expire);
  detail::put_u32(content, salt);
  detail::put_u16(content, static_cast<std::uint16_t>(data_->services.size()));
  for (const auto& [type, body] : data_->services) {
    detail::put_u16(content, type);
    content += body;
  }
  credkit::detail::SecretString key(detail::signing_key(data_->certificate.get(), issue_ts, salt));
  std::string packed;
  detail::put_string(packed, credkit::detail::hmac_sha256(key.get(), content));
  packed += content;
  return "007" + credkit::detail::base64_encode(detail::zlib_compress(packed));
}

std::string build_chat_user_token(std::string_view app_id, std::string_view app_certificate,
                                  std::string_view user_uuid, std::chrono::seconds expire) {
  AccessToken2 token{std::string(app_id), std::string(app_certificate), expire};
  token.add_chat_user(std::string(user_uuid), expire);
  return token.build();
}

std::string build_chat_app_token(std::string_view app_id, std::string_view app_certificate,
                                 std::chrono::seconds expire) {
  AccessToken2 token{std::string(app_id), std::string(app_certificate), expire};
  token.add_chat_app(expire);
  return token.build();
}

namespace {
Fetcher local_fetcher(std::string app_id, std::string app_certificate, std::optional<std::string> user_uuid,
                      std::chrono::seconds expire) {
  {
    // Validate now, so a misconfigured fetcher fails at setup rather than at the first fetch.
    AccessToken2 probe(app_id, app_certificate, expire);
    if (user_uuid) probe.add_chat_user(*user_uuid, expire);
  }
  auto cert = std::make_shared<const credkit::detail::SecretString>(std::move(app_certificate));
  return credkit::detail::local_token_fetcher([app_id = std::move(app_id), cert, user_uuid = std::move(user_uuid),
                                               expire] {
    AccessToken2 t(app_id, cert->get(), expire);
    if (user_uuid) {
      t.add_chat_user(*user_uuid, expire);
    } else {
      t.add_chat_app(expire);
    }
    auto token = t.build();
    const auto expires_on = detail::decode_access_token(token).info.expires_on;
    return AccessToken{std::move(token), expires_on};
  });
}
}  // namespace

Fetcher chat_user_token_fetcher(std::string app_id, std::string app_certificate, std::string user_uuid,
                                std::chrono::seconds expire) {
  return local_fetcher(std::move(app_id), std::move(app_certificate), std::move(user_uuid), expire);
}

Fetcher chat_app_token_fetcher(std::string app_id, std::string app_certificate, std::chrono::seconds expire) {
  return local_fetcher(std::move(app_id), std::move(app_certificate), std::nullopt, expire);
}

TokenInfo parse_access_token(std::string_view token) { return detail::decode_access_token(token).info; }

bool verify_access_token(std::string_view token, std::string_view app_certificate) noexcept {
  try {
    auto decoded = detail::decode_access_token(token);
    credkit::detail::SecretString key(
        detail::signing_key(app_certificate, decoded.info.issue_ts, decoded.info.salt));
    return credkit::detail::constant_time_equal(credkit::detail::hmac_sha256(key.get(), decoded.content),
                                                decoded.signature);
  } catch (...) {
    return false;
  }
}

}  // namespace credkit::agora
