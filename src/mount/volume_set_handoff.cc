// VolumeSet's side of the handoff (docs/dataplane.md 3, 6 and 7): the holder keeps every
// mounted volume's connection and arena, so that a server's death, or main's, costs the
// programs using a volume a pause, never an error; under systemd the fd store keeps them too.
#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include "claimfs/common/log.h"
#include "claimfs/handoff/bundle_name.h"
#include "claimfs/handoff/fd_store.h"
#include "claimfs/handoff/holder_client.h"
#include "claimfs/mount/volume_set.h"
#include "serve_protocol.h"

namespace claimfs::mount {
namespace {

using nlohmann::json;

constexpr std::string_view kFsnamePrefix = "claimfs:";

}  // namespace

void VolumeSet::ConnectHolderLocked(std::vector<handoff::NamedFd>* stored) {
  handoff::HolderLaunch launch;
  launch.binary_fd = options_.server_binary_fd;
  launch.build_id = options_.build_id;
  auto holder = handoff::EnsureHolder(options_.run_dir, launch);
  if (!holder.ok()) {
    log::Warn("no holder keeps the volumes' connections ({}): a serving process that dies takes "
              "its volumes' open files with it",
              holder.status().message());
    return;
  }
  holder_ = std::make_unique<handoff::HolderClient>(std::move(*holder));

  // After a restart of the whole service, systemd's store is where the connections survived.
  for (handoff::NamedFd& named : *stored) {
    if (!handoff::ParseBundleName(named.name).ok()) {
      log::Warn("{} from systemd's fd store is not a claimfs bundle name: closed", named.name);
      continue;
    }
    Status s = holder_->Put(named.name, named.fd.get());
    if (!s.ok() && s.code() != StatusCode::kAlreadyExists) {
      log::Warn("{} from systemd's fd store: {}", named.name, s.message());
    }
  }

  auto names = holder_->List();
  if (!names.ok()) {
    log::Warn("the holder's list: {}", names.status().message());
    return;
  }
  std::set<std::string> connections;
  for (const std::string& name : *names) {
    auto parsed = handoff::ParseBundleName(name);
    if (parsed.ok() && parsed->part == handoff::BundlePart::kConnection) {
      connections.insert(parsed->pv);
    }
  }
  for (const std::string& volume : connections) {
    if (!volumes_.count(volume)) held_.insert(volume);
  }
  if (!held_.empty()) {
    log::Info("the holder keeps {} volumes that no serving process serves: adopted as their "
              "claims are mounted again",
              held_.size());
  }
}

std::map<std::string, MountInfo> VolumeSet::HeldMountsLocked() const {
  std::map<std::string, MountInfo> out;
  if (held_.empty()) return out;
  auto mounts = ReadMountInfo();
  if (!mounts.ok()) return out;
  const std::string below = root_->real_path() + "/";
  for (MountInfo& m : *mounts) {
    if (!IsClaimfsMount(m) || m.mount_point.rfind(below, 0) != 0) continue;
    if (m.source.rfind(kFsnamePrefix, 0) != 0) continue;
    std::string volume = m.source.substr(kFsnamePrefix.size());
    if (held_.count(volume)) out[volume] = std::move(m);
  }
  return out;
}

Status VolumeSet::AdoptLocked(const MountRequest& request) {
  if (!holder_) return Status::Unavailable("no holder keeps " + request.volume);
  auto shard = PlaceLocked();
  if (!shard.ok()) return shard.status();
  Server& server = servers_[*shard];
  auto reply = serve::Call(server.fd, MountMessageLocked(request, "ADOPT"));
  if (!reply.ok()) {
    if (server.volumes == 0) ForgetServerLocked(*shard);
    return reply.status();
  }
  AddEntryLocked(request, *shard, static_cast<dev_t>(reply->value("device", uint64_t{0})));
  log::Info("{} (claim {}) adopted by serving process {}: its open files carried over",
            request.volume, request.claim, *shard);
  return Status::Ok();
}

void VolumeSet::StoreBundleLocked(const std::string& volume) {
  if (!holder_ || !handoff::FdStoreAvailable()) return;
  for (auto name : {handoff::ArenaName(volume), handoff::ConnectionName(volume)}) {
    if (!name.ok()) return;
    auto fd = holder_->Take(*name);
    if (!fd.ok()) return;  // the server could not deposit it: said in its log
    Status s = handoff::FdStorePush(*name, fd->get());
    if (!s.ok()) log::Warn("systemd's fd store does not keep {}: {}", *name, s.message());
  }
}

void VolumeSet::ForgetBundleLocked(const std::string& volume) {
  held_.erase(volume);
  auto prefix = handoff::VolumePrefix(volume);
  if (!prefix.ok()) return;
  if (holder_) (void)holder_->DropPrefix(*prefix);
  if (handoff::FdStoreAvailable()) {
    for (auto name : {handoff::ConnectionName(volume), handoff::ArenaName(volume)}) {
      if (name.ok()) (void)handoff::FdStoreRemove(*name);
    }
  }
}

void VolumeSet::DropUnclaimedBundles() {
  std::lock_guard lock(mu_);
  std::map<std::string, MountInfo> mounts = HeldMountsLocked();
  for (const std::string& volume : std::set<std::string>(held_)) {
    ForgetBundleLocked(volume);
    auto m = mounts.find(volume);
    if (m != mounts.end() &&
        umount2(m->second.mount_point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 &&
        errno != EINVAL && errno != ENOENT) {
      log::Warn("cannot detach the mount of {} at {}: {}", volume, m->second.mount_point,
                strerror(errno));
    }
    log::Info("{} is no longer claimed: the connection kept for it was dropped", volume);
  }
}

}  // namespace claimfs::mount
