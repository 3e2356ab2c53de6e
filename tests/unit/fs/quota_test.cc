#include "fs/quota.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace claimfs::fs {
namespace {

TEST(QuotaTest, ReservationsNeverPassTheCapacity) {
  Quota q(10000, std::nullopt, 4000, 1);
  EXPECT_TRUE(q.TryReserveBytes(6000));
  EXPECT_FALSE(q.TryReserveBytes(1));
  EXPECT_EQ(q.AvailableBytes(), 0u);
  q.Commit(6000, 4096);  // reserved 6000, the filesystem allocated one block
  EXPECT_EQ(q.figures().used_bytes, 8096u);
  EXPECT_EQ(q.figures().reserved_bytes, 0u);
  EXPECT_EQ(q.AvailableBytes(), 1904u);
}

TEST(QuotaTest, FreesAndDriftAdjustUsage) {
  Quota q(1 << 20, std::nullopt, 8192, 3);
  q.Adjust(-4096, -1);
  EXPECT_EQ(q.figures().used_bytes, 4096u);
  EXPECT_EQ(q.figures().used_inodes, 2u);
  q.Adjust(-100000, -10);  // never below zero
  EXPECT_EQ(q.figures().used_bytes, 0u);
  EXPECT_EQ(q.figures().used_inodes, 0u);
}

TEST(QuotaTest, InodeLimitCountsReservations) {
  Quota q(1 << 20, 3, 0, 1);
  EXPECT_TRUE(q.TryReserveInode());
  EXPECT_TRUE(q.TryReserveInode());
  EXPECT_FALSE(q.TryReserveInode());
  q.CommitInode(true);
  q.CommitInode(false);  // that create failed: its reservation returns
  EXPECT_EQ(q.figures().used_inodes, 2u);
  EXPECT_TRUE(q.TryReserveInode());
  EXPECT_FALSE(q.TryReserveInode());
}

TEST(QuotaTest, CapacityChangesLiveButNotBelowUsage) {
  Quota q(1000, std::nullopt, 800, 1);
  EXPECT_TRUE(q.SetCapacity(2000).ok());
  EXPECT_EQ(q.AvailableBytes(), 1200u);
  Status s = q.SetCapacity(799);
  EXPECT_EQ(s.code(), StatusCode::kForbidden);
  EXPECT_EQ(q.figures().capacity, 2000u);
  EXPECT_TRUE(q.SetCapacity(800).ok());
}

TEST(QuotaTest, DisabledQuotaRefusesCapacityChanges) {
  Quota q(std::nullopt, std::nullopt, 0, 0);
  EXPECT_FALSE(q.enabled());
  EXPECT_FALSE(q.SetCapacity(100).ok());
}

TEST(QuotaTest, ConcurrentReservationsStayWithinCapacity) {
  constexpr uint64_t kCapacity = 1 << 20;
  Quota q(kCapacity, std::nullopt, 0, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        if (q.TryReserveBytes(4096)) q.Commit(4096, 4096);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(q.figures().used_bytes, kCapacity);
}

TEST(QuotaArithmeticTest, FragmentSizeDividesTheCapacity) {
  EXPECT_EQ(FragmentSizeFor(64ull << 20), 4096u);
  EXPECT_EQ(FragmentSizeFor(1500000000), 256u);
  EXPECT_EQ(FragmentSizeFor(1000), 8u);
  EXPECT_EQ(FragmentSizeFor(4097), 1u);
  for (uint64_t c : {64ull << 20, 1500000000ull, 1000ull, 4097ull}) {
    EXPECT_EQ(c % FragmentSizeFor(c), 0u) << c;
  }
}

TEST(QuotaArithmeticTest, BlockSpanCoversTouchedBlocks) {
  EXPECT_EQ(BlockSpan(0, 0, 4096), 0u);
  EXPECT_EQ(BlockSpan(0, 1, 4096), 4096u);
  EXPECT_EQ(BlockSpan(0, 4096, 4096), 4096u);
  EXPECT_EQ(BlockSpan(4095, 2, 4096), 8192u);
  EXPECT_EQ(BlockSpan(100, 1 << 20, 4096), (1u << 20) + 4096);
}

}  // namespace
}  // namespace claimfs::fs
