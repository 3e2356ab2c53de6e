// VolumeSet's side of an upgrade (docs/dataplane.md 7.4): servers left by a main of another
// build hand their volumes, one at a time, to servers of this build; the programs using a
// volume wait in the kernel meanwhile and see no error.
#include "claimfs/common/log.h"
#include "claimfs/handoff/holder_client.h"
#include "claimfs/mount/volume_set.h"
#include "serve_protocol.h"

namespace claimfs::mount {

void VolumeSet::MoveOffOtherBuildsLocked() {
  std::vector<int> old;
  for (const auto& [shard, server] : servers_) {
    if (server.other_build) old.push_back(shard);
  }
  for (int shard : old) {
    std::vector<std::string> names;
    for (const auto& [name, entry] : volumes_) {
      if (entry.shard == shard) names.push_back(name);
    }
    if (!holder_) {
      log::Warn("serving process {} is of another build; no holder: its {} volumes stay", shard,
                names.size());
      continue;
    }
    log::Info("serving process {} is of another build: moving its {} volumes", shard, names.size());
    for (const std::string& name : names) {
      Entry entry = volumes_[name];
      auto released = serve::Call(servers_[shard].fd, {{"op", "RELEASE"}, {"volume", name}});
      if (!released.ok()) {
        log::Warn("{} stays on serving process {}: {}", name, shard, released.status().message());
        continue;
      }
      volumes_.erase(name);
      --servers_[shard].volumes;
      Status s = AdoptLocked(entry.request);
      if (s.ok()) continue;
      // Back to the server it came from, which adopts the bundle the holder kept.
      auto back = serve::Call(servers_[shard].fd, MountMessageLocked(entry.request, "ADOPT"));
      if (back.ok()) {
        log::Warn("{} stays on serving process {}: not adopted by this build ({})", name, shard,
                  s.message());
        volumes_[name] = entry;
        ++servers_[shard].volumes;
      } else {
        log::Error("{} is served by nobody: not adopted by this build ({}) nor taken back ({})",
                   name, s.message(), back.status().message());
      }
    }
    if (servers_[shard].volumes == 0) {
      log::Info("serving process {} of another build ended: its volumes moved", shard);
      ForgetServerLocked(shard);
    }
  }
}

}  // namespace claimfs::mount
