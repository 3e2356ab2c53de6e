#include "controller/events.h"

#include <algorithm>
#include <utility>

namespace claimfs::controller::internal {

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
