// libFuzzer target for the manifest parser: any bytes must decode or be refused without a crash,
// and whatever decodes must survive the JSON and YAML round trips unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "claimfs/yaml/codec.h"
#include "claimfs/yaml/defaults.h"
#include "claimfs/yaml/manifest.h"
#include "claimfs/yaml/validation.h"

namespace {

using claimfs::yaml::ManifestSet;
using claimfs::yaml::Object;

void Check(bool condition) {
  if (!condition) std::abort();
}

void RoundTrip(const Object& object) {
  nlohmann::json encoded = claimfs::yaml::ToJson(object);
  auto decoded = claimfs::yaml::ObjectFromJson(encoded);
  Check(decoded.ok());
  Check(claimfs::yaml::ToJson(*decoded) == encoded);

  std::string text;
  try {
    text = encoded.dump();  // throws on invalid UTF-8, which YAML let through
  } catch (const nlohmann::json::exception&) {
    return;
  }
  auto reparsed = claimfs::yaml::ObjectFromJson(nlohmann::json::parse(text));
  Check(reparsed.ok());
  Check(claimfs::yaml::ToJson(*reparsed) == encoded);

  std::string yaml = claimfs::yaml::ToYaml(object);
  ManifestSet again = claimfs::yaml::ParseManifests(yaml, "roundtrip.yaml",
                                                    {.set_defaults = false, .validate = false});
  Check(again.ok());
  Check(again.objects.size() == 1);
  Check(claimfs::yaml::ToJson(again.objects[0].object) == encoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ManifestSet set = claimfs::yaml::ParseManifests(text, "fuzz.yaml");
  for (const auto& e : set.errors) Check(!e.message.empty() && e.line >= 1 && e.column >= 1);
  for (const auto& m : set.objects) {
    RoundTrip(m.object);
    Check(claimfs::yaml::Validate(m.object).empty());
  }
  // Without defaults and validation every decodable object must round-trip too.
  ManifestSet raw =
      claimfs::yaml::ParseManifests(text, "fuzz.yaml", {.set_defaults = false, .validate = false});
  for (const auto& m : raw.objects) RoundTrip(m.object);
  return 0;
}
