#include "fs/slot_array.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace claimfs::fs {
namespace {

using Slots = SlotArray<int>;

TEST(SlotArray, UnsetSlotsReadAsZeroAndSetOnesKeepTheirValueAcrossChunks) {
  Slots slots;
  const std::vector<uint32_t> probes = {0,
                                        1,
                                        Slots::kChunk - 1,
                                        Slots::kChunk,
                                        Slots::kChunk + 1,
                                        7 * Slots::kChunk + 3,
                                        Slots::kChunk * Slots::kChunks - 1};
  for (uint32_t slot : probes) EXPECT_EQ(slots.Get(slot), 0) << slot;
  for (uint32_t slot : probes) ASSERT_TRUE(slots.Set(slot, static_cast<int>(slot % 1000) + 1));
  for (uint32_t slot : probes) EXPECT_EQ(slots.Get(slot), static_cast<int>(slot % 1000) + 1);
  EXPECT_EQ(slots.Get(2), 0);  // a neighbour in a used chunk
  EXPECT_EQ(slots.Get(3 * Slots::kChunk), 0);  // a chunk never used
}

TEST(SlotArray, SlotsBeyondTheArrayAreRefusedAndReadAsZero) {
  Slots slots;
  const uint32_t beyond = static_cast<uint32_t>(Slots::kChunk * Slots::kChunks);
  EXPECT_FALSE(slots.Set(beyond, 5));
  EXPECT_FALSE(slots.Set(UINT32_MAX, 5));
  EXPECT_EQ(slots.Get(beyond), 0);
  EXPECT_EQ(slots.Get(UINT32_MAX), 0);
}

// Readers run without a lock while writers add chunks: a reader sees 0 or the value, never
// anything else.
TEST(SlotArray, ReadersRacingWritersThatAddChunksSeeZeroOrTheValue) {
  Slots slots;
  constexpr uint32_t kSlots = 64 * Slots::kChunk;
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        for (uint32_t slot = 0; slot < kSlots; slot += 97) {
          int v = slots.Get(slot);
          if (v != 0 && v != static_cast<int>(slot) + 1) wrong.fetch_add(1);
        }
      }
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      for (uint32_t slot = static_cast<uint32_t>(w); slot < kSlots; slot += 2) {
        if (!slots.Set(slot, static_cast<int>(slot) + 1)) wrong.fetch_add(1);
      }
    });
  }
  for (std::thread& t : writers) t.join();
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(wrong.load(), 0);
  for (uint32_t slot = 0; slot < kSlots; ++slot) ASSERT_EQ(slots.Get(slot), static_cast<int>(slot) + 1);
}

}  // namespace
}  // namespace claimfs::fs
