#include "sources/http/service_call.hpp"

namespace credkit::detail {

std::exception_ptr with_context(std::exception_ptr error, const std::string& what) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& err) {
    if (err.code() == make_error_code(errc::cancelled)) return error;
    const std::string msg = err.what();
    if (msg.starts_with(what)) return error;
    auto details = err.details();
    return std::make_exception_ptr(Error(err.code(), what + ": " + msg, std::move(details)));
  } catch (...) {
    return error;
  }
}

}  // namespace credkit::detail
