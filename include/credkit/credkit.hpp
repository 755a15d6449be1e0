// credkit — umbrella header: the core credential and its helpers. The token sources and the
// caches have their own: <credkit/sources.hpp>, <credkit/caches.hpp>. The coroutine fetcher
// is opt-in, <credkit/core/coroutine_fetcher.hpp>: it alone pulls in <boost/asio/awaitable.hpp>.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/clock.hpp>
#include <credkit/core/credential_health.hpp>
#include <credkit/core/error.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/core/log.hpp>
#include <credkit/core/metrics_observer.hpp>
#include <credkit/core/parse_token.hpp>
#include <credkit/core/refresh_policy.hpp>
#include <credkit/core/subscription.hpp>
#include <credkit/core/token_credential.hpp>
#include <credkit/core/token_credential_options.hpp>
#include <credkit/core/token_event.hpp>
#include <credkit/core/token_handle.hpp>
