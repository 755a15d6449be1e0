// credkit — umbrella header of the token caches (memory, encrypted file, Redis) and the on-demand
// credentials built over them. Each header can also be included alone.
#pragma once

#include <credkit/credkit.hpp>

#include <credkit/caches/cache_encryption_key.hpp>
#include <credkit/caches/cached_token_source.hpp>
#include <credkit/caches/encrypted_file_token_cache.hpp>
#include <credkit/caches/keychain_key.hpp>
#include <credkit/caches/memory_token_cache.hpp>
#include <credkit/caches/redis_token_cache.hpp>
#include <credkit/caches/token_cache.hpp>
#include <credkit/caches/token_cache_key.hpp>
