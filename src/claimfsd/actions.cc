// Daemon: what each action of a plan does to the machine (provision, mount, expand, unmount,
// delete, recycle).
#include "daemon.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "claimfs/common/log.h"
#include "claimfs/model/host_path.h"
#include "claimfs/model/objects.h"
#include "claimfs/provisioner/volume_directory.h"

namespace claimfs::claimfsd {
namespace {

using controller::Action;
using controller::ActionType;

// The directory a volume serves may only lie below a pool or an allowed hostPath prefix, and
// is reached without following symlinks. A hostPath PV whose type is unset or
// DirectoryOrCreate gets its directory when it is missing, as the kubelet and container
// runtimes do for such volumes; type Directory must exist. Returns the path in its normal form
// (the bytes the mount must use) and the identity of the directory the check reached. `created`
// says whether this call made the directory itself, even when a later step failed.
struct CheckedSource {
  std::string path;
  std::optional<provisioner::DirectoryIdentity> identity;
};
Result<CheckedSource> PrepareVolumeSource(const std::string& volume, const std::string& path,
                                          const std::vector<model::PersistentVolume>& volumes,
                                          const std::vector<std::string>& roots,
                                          const provisioner::DirectoryOwner& owner,
                                          bool* created) {
  auto normal = model::HostPath::Parse(path);
  if (!normal.ok()) {
    return Status::Forbidden("volume source " + model::EscapePathForMessage(path) + ": " +
                             model::HostPathProblem(path).value_or("not a usable path"));
  }
  bool create_missing = false;
  for (const model::PersistentVolume& pv : volumes) {
    if (pv.metadata.name != volume || !pv.spec.host_path) continue;
    std::string type = pv.spec.host_path->type.value_or("");
    create_missing = type.empty() || type == "DirectoryOrCreate";
  }
  auto identity = provisioner::OpenVolumeSource(normal->string(), roots, create_missing, created,
                                               owner);
  if (!identity.ok()) return identity.status();
  return CheckedSource{normal->string(), *identity};
}

// Whether the mount at `mount_path` serves the directory `expected`: its root reports the backing
// directory's inode (a forced GETATTR, not the kernel's cached root inode number).
Status VerifyMountedSource(const std::string& mount_path, const std::string& source,
                           const provisioner::DirectoryIdentity& expected) {
  struct statx st;
  if (::statx(AT_FDCWD, mount_path.c_str(), AT_STATX_FORCE_SYNC, STATX_INO, &st) != 0) {
    return Status::FromErrno("cannot stat the new mount " + mount_path, errno);
  }
  if (st.stx_ino != expected.ino) {
    return Status::Forbidden("volume source " + source +
                             " changed between its check and its mount (a component was "
                             "replaced, by a symlink perhaps): refusing to serve it");
  }
  return Status::Ok();
}

// The owner and mode a claim asks for its new volume's root (a Docker volume's uid, gid and
// mode options), from its annotations.
Result<provisioner::DirectoryOwner> RequestedOwner(
    const std::string& claim_key, const std::vector<model::PersistentVolumeClaim>& claims) {
  provisioner::DirectoryOwner owner;
  for (const model::PersistentVolumeClaim& claim : claims) {
    if (controller::ClaimKey(claim) != claim_key) continue;
    auto number = [&](const char* annotation, int base) -> Result<std::optional<unsigned long>> {
      auto it = claim.metadata.annotations.find(annotation);
      if (it == claim.metadata.annotations.end()) return std::optional<unsigned long>();
      char* end = nullptr;
      errno = 0;
      unsigned long value = std::strtoul(it->second.c_str(), &end, base);
      if (it->second.empty() || *end != '\0' || errno != 0 || value > 0xffffffffUL) {
        return Status::Invalid("annotation " + std::string(annotation) + " of claim " +
                               claim_key + " is not a valid number: \"" + it->second + "\"");
      }
      return std::optional<unsigned long>(value);
    };
    auto uid = number(controller::kOwnerUidAnnotation, 10);
    if (!uid.ok()) return uid.status();
    auto gid = number(controller::kOwnerGidAnnotation, 10);
    if (!gid.ok()) return gid.status();
    auto mode = number(controller::kModeAnnotation, 8);
    if (!mode.ok()) return mode.status();
    if (*uid) owner.uid = static_cast<uid_t>(**uid);
    if (*gid) owner.gid = static_cast<gid_t>(**gid);
    if (*mode) owner.mode = static_cast<mode_t>(**mode & 07777);
  }
  return owner;
}

}  // namespace

Status Daemon::Perform(const Action& a, const std::vector<model::PersistentVolume>& volumes,
                       const std::vector<model::PersistentVolumeClaim>& claims) {
  switch (a.type) {
    case ActionType::kProvision: {
      std::string pool_path = a.path.substr(0, a.path.rfind('/'));
      auto owner = RequestedOwner(a.claim, claims);
      if (!owner.ok()) return owner.status();
      Status s = provisioner::CreateVolumeDirectory(pool_path, a.volume, *owner);
      if (!s.ok()) return s;
      Status r = RecordCreatedDirectory(a.volume, a.path);
      if (!r.ok()) {
        // The volume still works; only its Delete will refuse and keep the data.
        log::Error("cannot record that claimfsd created {}: {}", a.path, r.message());
      }
      return Status::Ok();
    }
    case ActionType::kExpand: {
      if (!volumes_->MountedVolumes().count(a.volume)) return Status::Ok();  // at the next mount
      Status s = volumes_->SetCapacity(a.volume, static_cast<uint64_t>(a.size_bytes));
      if (s.ok()) {
        auto size = [](int64_t bytes) {
          return model::Quantity::FromBytes(bytes, model::QuantityFormat::kBinarySI).ToString();
        };
        log::Info("claim {}: volume {} expanded from {} to {}", a.claim, a.volume,
                  size(a.old_size_bytes), size(a.size_bytes));
      }
      return s;
    }
    case ActionType::kMount: {
      auto owner = RequestedOwner(a.claim, claims);
      if (!owner.ok()) return owner.status();
      bool created = false;
      auto source =
          PrepareVolumeSource(a.volume, a.path, volumes, VolumeRoots(), *owner, &created);
      if (created) {
        Status r = RecordCreatedDirectory(a.volume, a.path);
        if (!r.ok()) log::Error("cannot record that claimfsd created {}: {}", a.path, r.message());
      }
      if (!source.ok()) return source.status();
      mount::MountRequest r;
      r.volume = a.volume;
      r.claim = a.claim;
      r.source = source->path;
      r.capacity_bytes = static_cast<uint64_t>(a.size_bytes);
      r.read_only = a.read_only;
      r.mount_options = a.mount_options;
      Status s = volumes_->Mount(r);
      if (!s.ok() || !source->identity) return s;
      // The volume layer opens the source by path again: a component swapped for a symlink
      // since the walk above would be followed there. Serve only the directory that was checked.
      s = VerifyMountedSource(volumes_->MountPath(a.claim), source->path, *source->identity);
      if (!s.ok()) (void)volumes_->Unmount(a.volume);
      return s;
    }
    case ActionType::kUnmount:
      return volumes_->Unmount(a.volume);
    case ActionType::kDeleteVolumeData: {
      Status s = CheckCreatedDirectory(a.volume, a.path);
      if (s.ok()) s = provisioner::DeleteVolumeDirectory(a.path, VolumeRoots());
      if (!s.ok()) return s;
      Status r = store_->ForgetCreatedDirectory(a.path);
      if (!r.ok()) log::Warn("cannot forget the record of {}: {}", a.path, r.message());
      return Status::Ok();
    }
    case ActionType::kRecycle: {
      Status s = CheckCreatedDirectory(a.volume, a.path);
      if (!s.ok()) return s;
      return provisioner::ScrubVolumeDirectory(a.path, VolumeRoots());
    }
  }
  return Status::Internal("unknown action");
}

}  // namespace claimfs::claimfsd
