// The claim events of serving processes that died (docs/dataplane.md, 3): one per volume.
#include <ctime>
#include <random>

#include "claimfs/common/log.h"
#include "claimfs/model/objects.h"
#include "claimfs/store/write_batch.h"
#include "daemon.h"

namespace claimfs::claimfsd {

void Daemon::RecordServerLost(const mount::ServerLoss& loss) {
  const mount::MountedVolume& volume = loss.volume;
  size_t slash = volume.claim.find('/');
  std::string ns = slash == std::string::npos ? "default" : volume.claim.substr(0, slash);
  std::string name = slash == std::string::npos ? volume.claim : volume.claim.substr(slash + 1);
  auto claim = store_->GetPersistentVolumeClaim(ns, name);
  if (!claim.ok()) return;  // deleted meanwhile: nobody to tell

  char now[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
  thread_local std::mt19937_64 random(std::random_device{}());
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random()));

  model::Event e;
  e.metadata.name = name + "." + suffix;
  e.metadata.namespace_ = ns;
  e.metadata.creation_timestamp = now;
  e.involved_object.kind = "PersistentVolumeClaim";
  e.involved_object.api_version = "v1";
  e.involved_object.namespace_ = ns;
  e.involved_object.name = name;
  e.involved_object.uid = claim->metadata.uid;
  e.involved_object.resource_version = claim->metadata.resource_version;
  e.type = "Warning";
  if (loss.adopted) {
    e.reason = "VolumeServerRestarted";
    e.message = "the process serving volume " + volume.volume +
                " died; a new one took over its connection (programs using it saw a pause, no "
                "error)";
  } else if (loss.remounted.ok()) {
    e.reason = "VolumeServerRestarted";
    e.message = "the process serving volume " + volume.volume + " died; it is mounted again at " +
                volume.mount_path + " (files open across the restart failed with ENOTCONN)";
  } else {
    e.reason = "FailedMount";
    e.message = "the process serving volume " + volume.volume +
                " died and it cannot be mounted again: " + loss.remounted.message();
  }
  e.source_component = "claimfsd";
  e.first_timestamp = now;
  e.last_timestamp = now;
  store::WriteBatch batch;
  batch.AddEvent(std::move(e));
  Status s = store_->Apply(batch);
  if (!s.ok()) log::Warn("cannot record the event of claim {}: {}", volume.claim, s.message());
  {
    std::lock_guard lock(wake_mu_);
    wake_ = true;  // a volume that could not be mounted again is retried by the next pass
  }
  wake_cv_.notify_all();
}

}  // namespace claimfs::claimfsd
