// Cache encryption keys in the desktop's Secret Service (libsecret, synchronous API), each call
// bounded in time: the libsecret work runs on a helper thread with a GCancellable, and the
// caller stops waiting at the options' timeout.
#include <credkit/caches/keychain_key.hpp>
#include <credkit/core/error.hpp>

#include "caches/keychain_material.hpp"

#ifdef CREDKIT_HAVE_LIBSECRET
#include <libsecret/secret.h>

#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#endif

#include <string>

namespace credkit {

bool secret_service_compiled_in() noexcept {
#ifdef CREDKIT_HAVE_LIBSECRET
  return true;
#else
  return false;
#endif
}

#ifdef CREDKIT_HAVE_LIBSECRET

namespace {

/// The one schema of credkit's items; `credkit-kind` is always "cache-encryption-key".
const SecretSchema* key_schema() {
  static const SecretSchema schema = [] {
    SecretSchema s{};
    s.name = "org.credkit.CacheEncryptionKey";
    s.flags = SECRET_SCHEMA_NONE;
    s.attributes[0] = {"application", SECRET_SCHEMA_ATTRIBUTE_STRING};
    s.attributes[1] = {"credkit-key", SECRET_SCHEMA_ATTRIBUTE_STRING};
    s.attributes[2] = {"credkit-kind", SECRET_SCHEMA_ATTRIBUTE_STRING};
    return s;
  }();
  return &schema;
}

struct GObjectUnref {
  void operator()(gpointer object) const noexcept { g_object_unref(object); }
};
template <typename T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;

struct SecretValueUnref {
  void operator()(SecretValue* value) const noexcept { secret_value_unref(value); }
};
using SecretValuePtr = std::unique_ptr<SecretValue, SecretValueUnref>;

/// Owns a GError filled by a libsecret call.
class GErrorSlot {
 public:
  GError** out() noexcept { return &error_; }
  std::string message(const char* without_error = "no details") const { return error_ ? error_->message : without_error; }
  ~GErrorSlot() {
    if (error_) g_error_free(error_);
  }

 private:
  GError* error_ = nullptr;
};

struct GHashTableUnref {
  void operator()(GHashTable* table) const noexcept { g_hash_table_unref(table); }
};

struct GListOfObjects {
  GList* list = nullptr;
  ~GListOfObjects() { g_list_free_full(list, g_object_unref); }
};

/// One Secret Service item, as the options name it; the strings outlive every libsecret call.
class SecretServiceEntry {
 public:
  explicit SecretServiceEntry(const SecretServiceKeyOptions& options)
      : options_(options),
        label_(options.label.empty() ? "credkit cache key " + options.application + "/" + options.name
                                     : options.label),
        where_("the Secret Service item " + options.application + "/" + options.name + " in collection '" +
               options.collection + "'") {
    attributes_.reset(g_hash_table_new(g_str_hash, g_str_equal));
    g_hash_table_insert(attributes_.get(), const_cast<char*>("application"), const_cast<char*>(options_.application.c_str()));
    g_hash_table_insert(attributes_.get(), const_cast<char*>("credkit-key"), const_cast<char*>(options_.name.c_str()));
    g_hash_table_insert(attributes_.get(), const_cast<char*>("credkit-kind"), const_cast<char*>("cache-encryption-key"));
  }

  /// Connects and opens the collection: unavailable unless it exists and is unlocked.
  void open(GCancellable* cancellable) {
    connect_bus(cancellable);
    GErrorSlot error;
    service_.reset(secret_service_open_sync(SECRET_TYPE_SERVICE, nullptr, SECRET_SERVICE_OPEN_SESSION, cancellable,
                                            error.out()));
    if (!service_)
      unavailable("no Secret Service (org.freedesktop.secrets) answers on the session bus (" + error.message() +
                  "); start one (gnome-keyring-daemon, KeePassXC's Secret Service integration) or keep the key in "
                  "the kernel keyring (KernelKeyringKeyOptions)");
    GErrorSlot alias_error;
    collection_.reset(secret_collection_for_alias_sync(service_.get(), options_.collection.c_str(),
                                                       SECRET_COLLECTION_NONE, cancellable, alias_error.out()));
    if (!collection_)
      unavailable("the Secret Service has no collection '" + options_.collection + "' (" +
                  alias_error.message("no collection has that alias") +
                  "); create the keyring (the desktop's login keyring is 'default') or name another collection");
    if (secret_collection_get_locked(collection_.get()))
      unavailable("the Secret Service collection '" + options_.collection +
                  "' is locked; unlock it (log in to the desktop, or `gnome-keyring-daemon --unlock` with the "
                  "password on stdin): credkit never prompts");
  }

  /// The stored keys, or an empty list when the item does not exist.
  std::vector<CacheEncryptionKey> read(GCancellable* cancellable) {
    GErrorSlot error;
    GListOfObjects found;
    found.list = secret_collection_search_sync(collection_.get(), key_schema(), attributes_.get(),
                                               static_cast<SecretSearchFlags>(SECRET_SEARCH_ALL |
                                                                              SECRET_SEARCH_LOAD_SECRETS),
                                               cancellable, error.out());
    if (!found.list) {
      if (*error.out()) unavailable("searching the Secret Service for " + where_ + " failed (" + error.message() + ")");
      return {};
    }
    item_.reset(SECRET_ITEM(g_object_ref(found.list->data)));
    const SecretValuePtr value(secret_item_get_secret(item_.get()));
    if (!value) unavailable("the Secret Service did not hand out " + where_ + " (is the item locked?)");
    gsize size = 0;
    const gchar* text = secret_value_get(value.get(), &size);
    // The SecretValue lives in libsecret's wiped memory; decoding copies into wiped keys only.
    return detail::decode_keychain_keys(std::string_view(text, size), options_.max_previous_keys, where_);
  }

  std::size_t max_previous_keys() const noexcept { return options_.max_previous_keys; }

  /// Stores `keys` in the item read before, or creates it.
  void write(const std::vector<CacheEncryptionKey>& keys, GCancellable* cancellable) {
    const detail::SecretText text = detail::encode_keychain_keys(keys);
    const SecretValuePtr value(secret_value_new(text.view().data(), static_cast<gssize>(text.view().size()), "text/plain"));
    GErrorSlot error;
    if (item_) {
      if (!secret_item_set_secret_sync(item_.get(), value.get(), cancellable, error.out()))
        unavailable("updating " + where_ + " failed (" + error.message() + ")");
      return;
    }
    item_.reset(secret_item_create_sync(collection_.get(), key_schema(), attributes_.get(), label_.c_str(),
                                        value.get(), SECRET_ITEM_CREATE_REPLACE, cancellable, error.out()));
    if (!item_) unavailable("creating " + where_ + " failed (" + error.message() + ")");
  }

 private:
  [[noreturn]] void unavailable(const std::string& message) const {
    throw_error(errc::keychain_unavailable, message);
  }

  void connect_bus(GCancellable* cancellable) {
    GErrorSlot error;
    GDBusConnection* bus = g_bus_get_sync(G_BUS_TYPE_SESSION, cancellable, error.out());
    if (!bus) {
      const char* address = std::getenv("DBUS_SESSION_BUS_ADDRESS");
      unavailable(std::string("no D-Bus session bus for the Secret Service (") + error.message() + "; " +
                  (address ? "DBUS_SESSION_BUS_ADDRESS is set but does not answer"
                           : "DBUS_SESSION_BUS_ADDRESS is unset") +
                  "); a desktop login has one, a headless service should keep the key in the kernel keyring "
                  "(KernelKeyringKeyOptions)");
    }
    // GLib ends the process when the shared session bus closes; a service must not die of that.
    g_dbus_connection_set_exit_on_close(bus, FALSE);
    g_object_unref(bus);
  }

  const SecretServiceKeyOptions& options_;
  const std::string label_;
  const std::string where_;
  std::unique_ptr<GHashTable, GHashTableUnref> attributes_;
  GObjectPtr<SecretService> service_;
  GObjectPtr<SecretCollection> collection_;
  GObjectPtr<SecretItem> item_;
};

/// How long a timed-out call waits for its cancelled helper thread before detaching it.
constexpr std::chrono::milliseconds kCancelledCallGrace{200};

/// What the helper thread and the waiting caller share; the last of them to let go frees it.
struct BoundedCall {
  std::mutex mutex;
  std::condition_variable finished_signal;
  bool finished = false;
  std::vector<CacheEncryptionKey> keys;
  std::exception_ptr error;
  GObjectPtr<GCancellable> cancellable{g_cancellable_new()};
};

/// Runs `work` on a helper thread and waits at most `options.timeout` for it. Past that the
/// call is cancelled and abandoned: libsecret's D-Bus calls end at once when cancelled, and a
/// thread stuck anyway is detached, holding only its own state.
std::vector<CacheEncryptionKey> run_bounded(const SecretServiceKeyOptions& options,
                                            std::function<std::vector<CacheEncryptionKey>(SecretServiceEntry&, GCancellable*)> work) {
  options.validate();
  auto call = std::make_shared<BoundedCall>();
  std::thread helper([call, options, work = std::move(work)] {
    std::vector<CacheEncryptionKey> keys;
    std::exception_ptr error;
    try {
      SecretServiceEntry entry(options);
      entry.open(call->cancellable.get());
      keys = work(entry, call->cancellable.get());
    } catch (...) {
      error = std::current_exception();
    }
    const std::lock_guard lock(call->mutex);
    call->keys = std::move(keys);
    call->error = error;
    call->finished = true;
    call->finished_signal.notify_all();
  });
  std::unique_lock lock(call->mutex);
  if (!call->finished_signal.wait_for(lock, options.timeout, [&] { return call->finished; })) {
    g_cancellable_cancel(call->cancellable.get());
    const bool ended = call->finished_signal.wait_for(lock, kCancelledCallGrace, [&] { return call->finished; });
    lock.unlock();
    if (ended)
      helper.join();
    else
      helper.detach();
    throw_error(errc::keychain_unavailable,
                "the Secret Service did not answer within " + std::to_string(options.timeout.count()) +
                    " ms (SecretServiceKeyOptions::timeout); the session bus or the keyring daemon is stuck");
  }
  lock.unlock();
  helper.join();
  if (call->error) std::rethrow_exception(call->error);
  return std::move(call->keys);
}

}  // namespace

std::vector<CacheEncryptionKey> load_keychain_keys(const SecretServiceKeyOptions& options) {
  return run_bounded(options, [](SecretServiceEntry& entry, GCancellable* cancellable) {
    std::vector<CacheEncryptionKey> keys = entry.read(cancellable);
    if (keys.empty()) {
      keys.push_back(CacheEncryptionKey::generate());
      entry.write(keys, cancellable);
    }
    return keys;
  });
}

std::vector<CacheEncryptionKey> rotate_keychain_key(const SecretServiceKeyOptions& options) {
  return run_bounded(options, [](SecretServiceEntry& entry, GCancellable* cancellable) {
    std::vector<CacheEncryptionKey> keys = detail::rotated_keychain_keys(entry.read(cancellable), entry.max_previous_keys());
    entry.write(keys, cancellable);
    return keys;
  });
}

#else  // built without libsecret

std::vector<CacheEncryptionKey> load_keychain_keys(const SecretServiceKeyOptions& options) {
  options.validate();
  detail::keychain_not_built("the Secret Service", "libsecret", "libsecret-1-dev", "libsecret-1");
}
std::vector<CacheEncryptionKey> rotate_keychain_key(const SecretServiceKeyOptions& options) { return load_keychain_keys(options); }

#endif

}  // namespace credkit
