// Internal: builds Kubernetes events and keeps the controller from repeating itself.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "claimfs/controller/controller.h"
#include "claimfs/model/objects.h"

namespace claimfs::controller::internal {

inline constexpr char kNormal[] = "Normal";
inline constexpr char kWarning[] = "Warning";

// Two kinds of event, so that reconciling an unchanged state emits nothing:
//  - a notice describes a state (FailedBinding, WaitForFirstConsumer, a full pool): it is
//    recorded once, and not again while an identical event (same object, type, reason, message)
//    is on record;
//  - an occurrence reports something done now (Provisioning, Resizing, a failed delete): an
//    identical event on record gets count + 1 and lastTimestamp = now, as the API server's
//    event aggregation shows "(x5 over 2m)";
//  - a resynced notice is what the PV controller re-emits at every periodic sync of an object
//    it cannot settle (FailedBinding of a Pending claim): recorded once, then counted again each
//    time kResyncPeriod has passed since its lastTimestamp, as Kubernetes' 15 s resync shows.
inline constexpr int kResyncPeriodSeconds = 15;

class EventRecorder {
 public:
  EventRecorder(std::vector<model::Event> existing, const Inputs& inputs);

  // The event to write, or nullopt when an identical notice is already on record.
  std::optional<model::Event> Notice(const model::ObjectReference& object, const char* type,
                                     const std::string& reason, const std::string& message,
                                     const char* component = kControllerComponent);
  // The event to write, or nullopt when an identical one was recorded within the resync period.
  std::optional<model::Event> Resynced(const model::ObjectReference& object, const char* type,
                                       const std::string& reason, const std::string& message,
                                       const char* component = kControllerComponent);
  model::Event Occurrence(const model::ObjectReference& object, const char* type,
                          const std::string& reason, const std::string& message,
                          const char* component = kControllerComponent);

 private:
  model::Event* Find(const model::ObjectReference& object, const char* type,
                     const std::string& reason, const std::string& message);
  model::Event Make(const model::ObjectReference& object, const char* type,
                    const std::string& reason, const std::string& message, const char* component);

  std::vector<model::Event> events_;
  const Inputs& inputs_;
};

}  // namespace claimfs::controller::internal
