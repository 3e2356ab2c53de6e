// store_crash_writer STATE_DIR SEED [--split-binds]: writes to a store without end, the way the
// controller does (binds, unbinds, releases, losses, creates, deletes, each as one batch), until
// it is killed.
// After opening it prints "ready"; after every committed batch, the store-wide resourceVersion.
// Any failure is a bug (it is the only writer): it prints it to stderr and exits 2.
// --split-binds writes each bind as two transactions, volume then claim: the deliberate bug the
// crash test must catch.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "claimfs/common/log.h"
#include "claimfs/store/state_store.h"
#include "unit/store/test_objects.h"

namespace claimfs::store {
namespace {

constexpr int kNames = 12;  // pv-0..pv-11, claim-0..claim-11

[[noreturn]] void Fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "store_crash_writer: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(2);
}

class Writer {
 public:
  Writer(StateStore* store, unsigned seed, bool split_binds)
      : store_(store), rng_(seed), split_binds_(split_binds) {}

  void Run() {
    Result<Snapshot> snap = store_->ReadSnapshot();
    if (!snap.ok()) Fail("read snapshot", snap.status());
    for (auto& pv : snap->volumes) volumes_[pv.metadata.name] = pv;
    for (auto& pvc : snap->claims) claims_[pvc.metadata.name] = pvc;
    for (;;) Step();
  }

 private:
  using Phase = model::VolumePhase;
  using ClaimPhase = model::ClaimPhase;

  int Roll(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  template <typename Map, typename Pred>
  typename Map::mapped_type* Pick(Map& map, Pred pred) {
    std::vector<typename Map::mapped_type*> found;
    for (auto& [name, object] : map) {
      if (pred(object)) found.push_back(&object);
    }
    return found.empty() ? nullptr : found[Roll(static_cast<int>(found.size()))];
  }

  std::string FreeName(const std::string& prefix, bool volumes) {
    for (int tries = 0; tries < 4; ++tries) {
      std::string name = prefix + std::to_string(Roll(kNames));
      if (volumes ? !volumes_.count(name) : !claims_.count(name)) return name;
    }
    return "";
  }

  void Step() {
    WriteBatch batch;
    switch (Roll(8)) {
      case 0: {  // create a volume
        std::string name = FreeName("pv-", true);
        if (name.empty()) return;
        batch.Create(testing::MakeVolume(name, (1 + Roll(4)) * (1LL << 30)));
        break;
      }
      case 1: {  // create a claim
        std::string name = FreeName("claim-", false);
        if (name.empty()) return;
        batch.Create(testing::MakeClaim("default", name));
        break;
      }
      case 2:
      case 3: {  // bind: both sides in one batch, with an event
        auto* pv = Pick(volumes_, [](auto& v) { return v.status.phase == Phase::kAvailable; });
        auto* pvc = Pick(claims_, [](auto& c) { return c.status.phase == ClaimPhase::kPending; });
        if (pv == nullptr || pvc == nullptr) return;
        model::PersistentVolume new_pv = *pv;
        model::PersistentVolumeClaim new_pvc = *pvc;
        testing::Bind(&new_pv, &new_pvc);
        if (split_binds_) {
          WriteBatch first;
          first.Update(new_pv);
          Commit(first);
        } else {
          batch.Update(new_pv);
        }
        batch.Update(new_pvc);
        model::Event event;
        event.involved_object = testing::ReferenceTo(*pvc);
        event.type = "Normal";
        event.reason = "Bound";
        event.message = "bound to " + pv->metadata.name;
        batch.AddEvent(event);
        break;
      }
      case 4: {  // unbind
        auto* pvc = Pick(claims_, [](auto& c) { return c.status.phase == ClaimPhase::kBound; });
        if (pvc == nullptr) return;
        model::PersistentVolume pv = volumes_.at(pvc->spec.volume_name);
        model::PersistentVolumeClaim claim = *pvc;
        pv.spec.claim_ref.reset();
        pv.status.phase = Phase::kAvailable;
        claim.spec.volume_name.clear();
        claim.status.phase = ClaimPhase::kPending;
        claim.status.capacity.reset();
        claim.status.access_modes.clear();
        batch.Update(pv);
        batch.Update(claim);
        break;
      }
      case 5: {  // the claim goes (Retain: the volume is Released), or the volume goes (Lost)
        auto* pvc = Pick(claims_, [](auto& c) { return c.status.phase == ClaimPhase::kBound; });
        if (pvc == nullptr) return;
        model::PersistentVolume pv = volumes_.at(pvc->spec.volume_name);
        if (Roll(2) == 0) {
          pv.status.phase = Phase::kReleased;
          batch.Update(pv);
          batch.Delete(Kind::kPersistentVolumeClaim, "default", pvc->metadata.name,
                       pvc->metadata.resource_version);
        } else {
          model::PersistentVolumeClaim claim = *pvc;
          claim.status.phase = ClaimPhase::kLost;
          batch.Delete(Kind::kPersistentVolume, "", pv.metadata.name, pv.metadata.resource_version);
          batch.Update(claim);
          model::Event event;
          event.involved_object = testing::ReferenceTo(claim);
          event.type = "Warning";
          event.reason = "ClaimLost";
          event.message = "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
          batch.AddEvent(event);
        }
        break;
      }
      case 6: {  // clean up: a Released volume is made Available, a Lost claim deleted
        if (Roll(2) == 0) {
          auto* pv = Pick(volumes_, [](auto& v) { return v.status.phase == Phase::kReleased; });
          if (pv == nullptr) return;
          model::PersistentVolume update = *pv;
          update.spec.claim_ref.reset();
          update.status.phase = Phase::kAvailable;
          batch.Update(update);
        } else {
          auto* pvc = Pick(claims_, [](auto& c) { return c.status.phase == ClaimPhase::kLost; });
          if (pvc == nullptr) return;
          batch.Delete(Kind::kPersistentVolumeClaim, "default", pvc->metadata.name,
                       pvc->metadata.resource_version);
        }
        break;
      }
      case 7: {  // delete an unbound volume or claim
        if (Roll(2) == 0) {
          auto* pv = Pick(volumes_, [](auto& v) { return v.status.phase == Phase::kAvailable; });
          if (pv == nullptr) return;
          batch.Delete(Kind::kPersistentVolume, "", pv->metadata.name,
                       pv->metadata.resource_version);
        } else {
          auto* pvc = Pick(claims_, [](auto& c) { return c.status.phase == ClaimPhase::kPending; });
          if (pvc == nullptr) return;
          batch.Delete(Kind::kPersistentVolumeClaim, "default", pvc->metadata.name,
                       pvc->metadata.resource_version);
        }
        break;
      }
    }
    Commit(batch);
  }

  void Commit(WriteBatch& batch) {
    std::vector<Object> written;
    Status s = store_->Apply(batch, &written);
    if (!s.ok()) Fail("apply", s);
    for (size_t i = 0; i < written.size(); ++i) {
      const WriteBatch::Op& op = batch.ops()[i];
      if (op.type == WriteBatch::OpType::kDelete) {
        if (op.kind == Kind::kPersistentVolume) volumes_.erase(op.name);
        if (op.kind == Kind::kPersistentVolumeClaim) claims_.erase(op.name);
      } else if (auto* pv = std::get_if<model::PersistentVolume>(&written[i])) {
        volumes_[pv->metadata.name] = *pv;
      } else if (auto* pvc = std::get_if<model::PersistentVolumeClaim>(&written[i])) {
        claims_[pvc->metadata.name] = *pvc;
      }
    }
    Result<std::string> version = store_->ResourceVersion();
    if (!version.ok()) Fail("read version", version.status());
    std::printf("%s\n", version->c_str());
    std::fflush(stdout);
  }

  StateStore* store_;
  std::mt19937 rng_;
  const bool split_binds_;
  std::map<std::string, model::PersistentVolume> volumes_;
  std::map<std::string, model::PersistentVolumeClaim> claims_;
};

}  // namespace
}  // namespace claimfs::store

int main(int argc, char** argv) {
  bool split_binds = argc == 4 && std::string(argv[3]) == "--split-binds";
  if (argc != 3 && !split_binds) {
    std::fprintf(stderr, "usage: store_crash_writer STATE_DIR SEED [--split-binds]\n");
    return 1;
  }
  using claimfs::store::StateStore;
  (void)claimfs::log::SetLevel("warn");  // stdout carries the versions
  claimfs::Result<std::unique_ptr<StateStore>> store = StateStore::Open(argv[1]);
  if (!store.ok()) claimfs::store::Fail("open", store.status());
  std::printf("ready\n");
  std::fflush(stdout);
  claimfs::store::Writer writer(
      store->get(), static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10)), split_binds);
  writer.Run();
}
