#include "controller/events.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>
#include <utility>

namespace claimfs::controller::internal {
namespace {

// Seconds since the epoch of an RFC 3339 UTC timestamp as Inputs::now writes it.
std::optional<int64_t> EpochSeconds(const std::string& timestamp) {
  std::tm tm{};
  char zone = 0;
  if (std::sscanf(timestamp.c_str(), "%d-%d-%dT%d:%d:%d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &zone) != 7 ||
      zone != 'Z') {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

EventRecorder::EventRecorder(std::vector<model::Event> existing, const Inputs& inputs)
    : events_(std::move(existing)), inputs_(inputs) {}

model::Event* EventRecorder::Find(const model::ObjectReference& object, const char* type,
                                  const std::string& reason, const std::string& message) {
  for (model::Event& e : events_) {
    const model::ObjectReference& o = e.involved_object;
    if (o.kind == object.kind && o.namespace_ == object.namespace_ && o.name == object.name &&
        o.uid == object.uid && e.type == type && e.reason == reason && e.message == message) {
      return &e;
    }
  }
  return nullptr;
}

model::Event EventRecorder::Make(const model::ObjectReference& object, const char* type,
                                 const std::string& reason, const std::string& message,
                                 const char* component) {
  model::Event e;
  e.metadata.uid = inputs_.new_uid ? inputs_.new_uid() : "";
  // Kubernetes names events "<object>.<16 hex digits>".
  std::string suffix = e.metadata.uid;
  suffix.erase(std::remove(suffix.begin(), suffix.end(), '-'), suffix.end());
  if (suffix.size() > 16) suffix.erase(0, suffix.size() - 16);
  e.metadata.name = object.name + "." + suffix;
  e.metadata.namespace_ = object.namespace_.empty() ? "default" : object.namespace_;
  e.metadata.creation_timestamp = inputs_.now;
  e.involved_object = object;
  e.reason = reason;
  e.message = message;
  e.type = type;
  e.source_component = component;
  e.count = 1;
  e.first_timestamp = inputs_.now;
  e.last_timestamp = inputs_.now;
  return e;
}

std::optional<model::Event> EventRecorder::Notice(const model::ObjectReference& object,
                                                  const char* type, const std::string& reason,
                                                  const std::string& message,
                                                  const char* component) {
  if (Find(object, type, reason, message)) return std::nullopt;
  events_.push_back(Make(object, type, reason, message, component));
  return events_.back();
}

std::optional<model::Event> EventRecorder::Resynced(const model::ObjectReference& object,
                                                    const char* type, const std::string& reason,
                                                    const std::string& message,
                                                    const char* component) {
  model::Event* e = Find(object, type, reason, message);
  if (!e) {
    events_.push_back(Make(object, type, reason, message, component));
    return events_.back();
  }
  std::optional<int64_t> last = EpochSeconds(e->last_timestamp);
  std::optional<int64_t> now = EpochSeconds(inputs_.now);
  if (!now || (last && *now - *last < kResyncPeriodSeconds)) return std::nullopt;
  e->count += 1;
  e->last_timestamp = inputs_.now;
  return *e;
}

model::Event EventRecorder::Occurrence(const model::ObjectReference& object, const char* type,
                                       const std::string& reason, const std::string& message,
                                       const char* component) {
  if (model::Event* e = Find(object, type, reason, message)) {
    e->count += 1;
    e->last_timestamp = inputs_.now;
    return *e;
  }
  events_.push_back(Make(object, type, reason, message, component));
  return events_.back();
}

}  // namespace claimfs::controller::internal
