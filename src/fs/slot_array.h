// A process-local map from a table slot (node or open-file id) to a value, read without a lock
// on every request: chunks are allocated on first use and never move.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

namespace claimfs::fs {

template <typename T>
class SlotArray {
 public:
  static constexpr size_t kChunk = 512;     // one page of 8-byte values
  static constexpr size_t kChunks = 32768;  // 16M slots

  // The chunk table is mapped, not allocated: its pages stay untouched (no memory) until a
  // chunk in them is used, so an idle volume costs two pages, not the whole table.
  SlotArray() {
    void* table = mmap(nullptr, kChunks * sizeof(std::atomic<T>*), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) throw std::bad_alloc();
    chunks_ = static_cast<std::atomic<T>**>(table);
  }
  ~SlotArray() {
    for (size_t i = 0; i < kChunks; ++i) delete[] chunks_[i];
    munmap(chunks_, kChunks * sizeof(std::atomic<T>*));
  }
  SlotArray(const SlotArray&) = delete;
  SlotArray& operator=(const SlotArray&) = delete;

  // T{} for a slot never set.
  T Get(uint32_t slot) const {
    if (slot / kChunk >= kChunks) return T{};
    std::atomic<T>* chunk = Top(slot).load(std::memory_order_acquire);
    return chunk ? chunk[slot % kChunk].load(std::memory_order_acquire) : T{};
  }
  // False when the slot is beyond the array (or memory ran out).
  bool Set(uint32_t slot, T value) {
    if (slot / kChunk >= kChunks) return false;
    std::atomic_ref<std::atomic<T>*> top = Top(slot);
    std::atomic<T>* chunk = top.load(std::memory_order_acquire);
    if (chunk == nullptr) {
      std::lock_guard lock(grow_mu_);
      chunk = top.load(std::memory_order_acquire);
      if (chunk == nullptr) {
        chunk = new (std::nothrow) std::atomic<T>[kChunk]();
        if (chunk == nullptr) return false;
        top.store(chunk, std::memory_order_release);
      }
    }
    chunk[slot % kChunk].store(value, std::memory_order_release);
    return true;
  }

 private:
  std::atomic_ref<std::atomic<T>*> Top(uint32_t slot) const {
    return std::atomic_ref<std::atomic<T>*>(chunks_[slot / kChunk]);
  }

  std::atomic<T>** chunks_ = nullptr;  // kChunks entries, read and written through atomic_ref
  std::mutex grow_mu_;
};

}  // namespace claimfs::fs
