// Test support: a real HTTP/1.1 server (Boost.Beast) on 127.0.0.1:<ephemeral port>, run on its
// own thread and io_context. A test scripts each answer (status, headers, body, or misbehaviour:
// never answer, drip slowly, close) and reads back what the server saw and how many TCP
// connections it accepted. Header-only; include it from as few test files as possible (Beast
// is heavy to compile).
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace credkit::test {

/// One request as the server saw it.
struct HttpExchange {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int connection = 0;  ///< 1-based number of the TCP connection it came on

  /// The first header named `name` (case-insensitive), or "".
  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (boost::beast::iequals(n, name)) return v;
    }
    return {};
  }
};

/// How the server answers one request.
struct HttpReply {
  enum class Mode {
    normal,        ///< Send the response (keep-alive when the client asks for it).
    never_answer,  ///< Read the request, then say nothing (the connection stays open).
    drip,          ///< Send the headers, then the body one byte per `drip_interval`.
    close,         ///< Close the connection without answering.
  };
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type = "text/plain";
  Mode mode = Mode::normal;
  std::chrono::milliseconds drip_interval{50};
};

/// A scripted HTTP/1.1 server on loopback.
class LoopbackHttpServer {
 public:
  using Handler = std::function<HttpReply(const HttpExchange&)>;

  explicit LoopbackHttpServer(Handler handler)
      : handler_(std::move(handler)), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  // Stops the thread; the io_context's destruction then destroys the sessions (closing their sockets).
  ~LoopbackHttpServer() {
    io_.stop();
    thread_.join();
  }

  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  unsigned short port() const { return port_; }
  /// `http://127.0.0.1:<port><path>`.
  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  /// TCP connections accepted so far.
  int connections() const { return connections_.load(); }
  /// Requests read so far.
  int requests() const {
    std::lock_guard l(m_);
    return static_cast<int>(exchanges_.size());
  }
  /// Every request read so far.
  std::vector<HttpExchange> exchanges() const {
    std::lock_guard l(m_);
    return exchanges_;
  }
  /// Waits (bounded) until `n` requests have been read.
  bool wait_for_requests(int n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    std::unique_lock l(m_);
    return cv_.wait_for(l, timeout, [&] { return static_cast<int>(exchanges_.size()) >= n; });
  }

 private:
  using tcp = boost::asio::ip::tcp;

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec) co_return;
      const int number = ++connections_;
      boost::asio::co_spawn(io_, session(std::move(socket), number), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> session(tcp::socket socket, int number) {
    namespace http = boost::beast::http;
    using boost::asio::as_tuple;
    using boost::asio::use_awaitable;
    boost::beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(16 * 1024 * 1024);
      auto [ec, n] = co_await http::async_read(socket, buffer, parser, as_tuple(use_awaitable));
      if (ec) co_return;
      auto request = parser.release();
      HttpExchange exchange;
      exchange.method = std::string(request.method_string());
      exchange.target = std::string(request.target());
      for (const auto& field : request) {
        exchange.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      exchange.body = request.body();
      exchange.connection = number;
      const HttpReply reply = handler_(exchange);
      {
        std::lock_guard l(m_);
        exchanges_.push_back(std::move(exchange));
      }
      cv_.notify_all();

      switch (reply.mode) {
        case HttpReply::Mode::close: {
          boost::system::error_code ignored;
          socket.close(ignored);
          co_return;
        }
        case HttpReply::Mode::never_answer: {
          boost::asio::steady_timer forever(io_, std::chrono::hours(1));
          co_await forever.async_wait(as_tuple(use_awaitable));
          co_return;
        }
        case HttpReply::Mode::drip: {
          std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " OK\r\nContent-Type: " +
                             reply.content_type + "\r\nContent-Length: " + std::to_string(reply.body.size()) +
                             "\r\n\r\n";
          auto [wec, wn] = co_await boost::asio::async_write(socket, boost::asio::buffer(head), as_tuple(use_awaitable));
          if (wec) co_return;
          boost::asio::steady_timer timer(io_);
          for (char c : reply.body) {
            timer.expires_after(reply.drip_interval);
            co_await timer.async_wait(as_tuple(use_awaitable));
            auto [dec, dn] = co_await boost::asio::async_write(socket, boost::asio::buffer(&c, 1), as_tuple(use_awaitable));
            if (dec) co_return;
          }
          continue;
        }
        case HttpReply::Mode::normal: break;
      }
      http::response<http::string_body> response{static_cast<http::status>(reply.status), request.version()};
      response.set(http::field::content_type, reply.content_type);
      for (const auto& [name, value] : reply.headers) response.set(name, value);
      response.body() = reply.body;
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      auto [wec, wn] = co_await http::async_write(socket, response, as_tuple(use_awaitable));
      if (wec || !request.keep_alive()) co_return;
    }
  }

  Handler handler_;
  boost::asio::io_context io_;  // destroyed last: it destroys the pending sessions, which touch no other member
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<int> connections_{0};
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  std::vector<HttpExchange> exchanges_;
  std::thread thread_;
};

}  // namespace credkit::test
