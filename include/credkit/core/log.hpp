// credkit — the library's log output and the redaction helper every log line goes through.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace credkit {

/// Severity of a log line.
enum class LogLevel { debug = 0, info = 1, warning = 2, error = 3, off = 4 };

/// Receives credkit's log lines. Lines never contain a token, key or connection string.
/// May be called from any thread, concurrently; must not call back into credkit.
using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

/// Installs the process-wide log handler (null restores the default, which writes
/// `warning` and `error` lines to stderr). Returns the previous handler.
LogHandler set_log_handler(LogHandler handler);

/// Lines below `level` are dropped before formatting. Default: `LogLevel::warning`.
void set_log_level(LogLevel level) noexcept;

/// The current threshold.
LogLevel log_level() noexcept;

/// Emits one line through credkit's log output. Supported API: credkit's components use it,
/// and fetcher authors may too, so that their lines share the handler, the level and the scrub.
///
/// Contract: a line below `log_level()` (or at `LogLevel::off`) is dropped. Every other line is
/// scrubbed first, whoever wrote it: secrets credkit handles (in any encoding), secret-shaped
/// text and control bytes never reach the handler (docs/security.md, "Trust boundaries"). The
/// line then goes to the installed handler, called synchronously on the calling thread, or to
/// stderr when none is installed. An exception the handler throws is swallowed; `log` itself
/// throws only `std::bad_alloc`.
///
/// Thread safety: may be called from any thread, concurrently with itself and with
/// `set_log_handler` / `set_log_level`. No credkit lock is held while the handler runs, so
/// `log` may be called from credkit callbacks (listeners, fetchers); a handler replaced
/// concurrently may still receive a line that was already on its way.
void log(LogLevel level, std::string_view message);

/// A safe description of a secret: up to 6 leading characters (none for secrets shorter
/// than 24) and the length, e.g. `eyJhbG…(1024 chars)`.
std::string redact(std::string_view secret);

}  // namespace credkit
