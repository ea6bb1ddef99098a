// md4-dist's C++ shim: a C interface to libtorch's own distributed engine (c10d) — TCPStore,
// PrefixStore and ProcessGroupGloo with its collectives — for the Rust side (src/ffi.rs).
//
// Every entry point catches every exception and returns it as a message (never aborts): 0 on
// success, 1 on failure with *err set to a malloc'd string that the caller frees with
// md4d_free. Tensors arrive as tch's raw `at::Tensor*`.
//
// Compiled with USE_C10D_GLOO against the wheel's c10d headers and gloo's headers vendored in
// vendor/gloo (the wheel does not ship them); the code itself is in libtorch_cpu.so.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int fail(char** err, const std::string& message) {
  if (err != nullptr) {
    *err = static_cast<char*>(std::malloc(message.size() + 1));
    if (*err != nullptr) {
      std::memcpy(*err, message.c_str(), message.size() + 1);
    }
  }
  return 1;
}

// Run `body`, turning any exception into an error message.
template <typename F>
int guarded(char** err, F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    return fail(err, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(err, e.what());
  } catch (...) {
    return fail(err, "unknown C++ exception");
  }
}

std::chrono::milliseconds millis(int64_t ms) {
  return std::chrono::milliseconds(ms);
}

}  // namespace

struct md4d_store {
  c10::intrusive_ptr<c10d::TCPStore> tcp;
  c10::intrusive_ptr<c10d::Store> store;  // `tcp` behind a prefix
};

struct md4d_pg {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

extern "C" {

void md4d_free(void* p) {
  std::free(p);
}

// A TCPStore client (or the server when is_server) at host:port, seen through `prefix`.
// world_size < 0: the server does not wait for a known number of workers.
int md4d_store_tcp(const char* host, uint16_t port, int is_server, int64_t world_size,
                   int64_t timeout_ms, const char* prefix, md4d_store** out, char** err) {
  return guarded(err, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server != 0;
    if (world_size > 0) {
      opts.numWorkers = static_cast<size_t>(world_size);
    }
    opts.waitWorkers = false;
    opts.timeout = millis(timeout_ms);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    *out = new md4d_store{tcp, store};
  });
}

// The port the underlying TCPStore uses (the bound one when it was opened with port 0).
int md4d_store_port(md4d_store* s, uint16_t* port, char** err) {
  return guarded(err, [&] { *port = s->tcp->getPort(); });
}

int md4d_store_set(md4d_store* s, const char* key, const uint8_t* data, size_t len, char** err) {
  return guarded(err, [&] { s->store->set(key, std::vector<uint8_t>(data, data + len)); });
}

// Wait (up to the store's timeout) for `key` and return its value (malloc'd, free with md4d_free).
int md4d_store_get(md4d_store* s, const char* key, uint8_t** data, size_t* len, char** err) {
  return guarded(err, [&] {
    std::vector<uint8_t> v = s->store->get(key);
    *len = v.size();
    *data = static_cast<uint8_t*>(std::malloc(v.empty() ? 1 : v.size()));
    if (*data == nullptr) {
      throw std::bad_alloc();
    }
    if (!v.empty()) {
      std::memcpy(*data, v.data(), v.size());
    }
  });
}

int md4d_store_add(md4d_store* s, const char* key, int64_t value, int64_t* result, char** err) {
  return guarded(err, [&] { *result = s->store->add(key, value); });
}

void md4d_store_free(md4d_store* s) {
  delete s;
}

// A Gloo process group over `store`: its TCP device binds to `interface` (a network interface
// name) when given, else to `hostname` when given, else to this machine's hostname (falling
// back to loopback). Collectives time out after timeout_ms.
int md4d_gloo_new(md4d_store* s, int rank, int size, const char* interface, const char* hostname,
                  int64_t timeout_ms, int threads, md4d_pg** out, char** err) {
  return guarded(err, [&] {
    auto opts = c10d::ProcessGroupGloo::Options::create(millis(timeout_ms));
    if (interface != nullptr && interface[0] != '\0') {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    } else if (hostname != nullptr && hostname[0] != '\0') {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    opts->threads = threads;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(s->store, rank, size, opts);
    *out = new md4d_pg{pg};
  });
}

// In-place sum over every rank.
int md4d_allreduce_sum(md4d_pg* pg, at::Tensor* t, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> tensors{*t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    pg->gloo->allreduce(tensors, opts)->wait();
  });
}

// In-place copy of rank `root`'s tensor to every rank.
int md4d_broadcast(md4d_pg* pg, at::Tensor* t, int root, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> tensors{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    pg->gloo->broadcast(tensors, opts)->wait();
  });
}

int md4d_barrier(md4d_pg* pg, char** err) {
  return guarded(err, [&] { pg->gloo->barrier(c10d::BarrierOptions())->wait(); });
}

void md4d_pg_free(md4d_pg* pg) {
  delete pg;
}

}  // extern "C"
