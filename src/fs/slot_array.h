// A process-local map from a table slot (node or open-file id) to a value, read without a lock
// on every request: chunks are allocated on first use and never move.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>

namespace claimfs::fs {

template <typename T>
class SlotArray {
 public:
  static constexpr size_t kChunk = 4096;
  static constexpr size_t kChunks = 4096;  // 16M slots

  SlotArray() : chunks_(new std::atomic<std::atomic<T>*>[kChunks]()) {}
  ~SlotArray() {
    for (size_t i = 0; i < kChunks; ++i) delete[] chunks_[i].load();
  }
  SlotArray(const SlotArray&) = delete;
  SlotArray& operator=(const SlotArray&) = delete;

  // T{} for a slot never set.
  T Get(uint32_t slot) const {
    if (slot / kChunk >= kChunks) return T{};
    std::atomic<T>* chunk = chunks_[slot / kChunk].load(std::memory_order_acquire);
    return chunk ? chunk[slot % kChunk].load(std::memory_order_acquire) : T{};
  }
  // False when the slot is beyond the array (or memory ran out).
  bool Set(uint32_t slot, T value) {
    if (slot / kChunk >= kChunks) return false;
    std::atomic<std::atomic<T>*>& top = chunks_[slot / kChunk];
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
  std::unique_ptr<std::atomic<std::atomic<T>*>[]> chunks_;
  std::mutex grow_mu_;
};

}  // namespace claimfs::fs
