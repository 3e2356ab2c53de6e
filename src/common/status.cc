#include "claimfs/common/status.h"

#include <cstring>

namespace claimfs {

Status Status::FromErrno(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  return Status(err == ENOENT ? StatusCode::kNotFound : StatusCode::kIOError, std::move(msg));
}

std::string Status::ToString() const { return ok() ? std::string("OK") : message_; }

}  // namespace claimfs
