#include "claimfs/store/state_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/yaml/codec.h"
#include "store/schema.h"
#include "unit/store/test_objects.h"

namespace claimfs::store {
namespace {

using testing::Bind;
using ::testing::HasSubstr;
using testing::MakeClaim;
using testing::MakeClass;
using testing::MakeVolume;
using testing::TempDir;

std::unique_ptr<StateStore> OpenOrDie(const std::filesystem::path& dir, Options options = {}) {
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(dir, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// Runs SQL on a database file through its own connection, behind the store's back.
void RawExec(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

std::string RawQuery(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    out = text ? reinterpret_cast<const char*>(text) : "";
  } else {
    out = std::string("error: ") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const std::regex kUuidV4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
const std::regex kRfc3339Utc("\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z");

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    store_ = OpenOrDie(dir_.path());
    ASSERT_NE(store_, nullptr);
  }
  std::filesystem::path db_path() const { return dir_.path() / kDatabaseFileName; }

  TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_F(StateStoreTest, OpenCreatesWalDatabaseAtLatestSchema) {
  EXPECT_TRUE(std::filesystem::exists(db_path()));
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / kLockFileName));
  EXPECT_EQ(RawQuery(db_path(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(db_path(), "PRAGMA user_version"), std::to_string(LatestSchemaVersion()));
  EXPECT_EQ(*store_->ResourceVersion(), "0");
}

TEST_F(StateStoreTest, OpenCreatesMissingStateDirectory) {
  std::filesystem::path nested = dir_.path() / "a" / "b";
  auto store = OpenOrDie(nested);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(std::filesystem::exists(nested / kDatabaseFileName));
}

TEST_F(StateStoreTest, CreateSetsMetadataForEveryKind) {
  Result<model::StorageClass> sc = store_->Create(MakeClass("fast"));
  ASSERT_TRUE(sc.ok()) << sc.status().ToString();
  Result<model::PersistentVolume> pv = store_->Create(MakeVolume("pv-1"));
  ASSERT_TRUE(pv.ok()) << pv.status().ToString();
  Result<model::PersistentVolumeClaim> pvc = store_->Create(MakeClaim("default", "data"));
  ASSERT_TRUE(pvc.ok()) << pvc.status().ToString();

  std::set<std::string> uids;
  for (const model::ObjectMeta* meta : {&sc->metadata, &pv->metadata, &pvc->metadata}) {
    EXPECT_TRUE(std::regex_match(meta->uid, kUuidV4)) << meta->uid;
    EXPECT_TRUE(std::regex_match(meta->creation_timestamp, kRfc3339Utc))
        << meta->creation_timestamp;
    EXPECT_EQ(meta->generation, 1);
    uids.insert(meta->uid);
  }
  EXPECT_EQ(uids.size(), 3u);
  EXPECT_EQ(sc->metadata.resource_version, "1");
  EXPECT_EQ(pv->metadata.resource_version, "2");
  EXPECT_EQ(pvc->metadata.resource_version, "3");
  EXPECT_EQ(*store_->ResourceVersion(), "3");

  // What comes back from a read is what the create returned, field for field.
  Result<model::StorageClass> got_sc = store_->GetStorageClass("fast");
  ASSERT_TRUE(got_sc.ok());
  EXPECT_EQ(*got_sc, *sc);
  Result<model::PersistentVolume> got_pv = store_->GetPersistentVolume("pv-1");
  ASSERT_TRUE(got_pv.ok());
  EXPECT_EQ(*got_pv, *pv);
  Result<model::PersistentVolumeClaim> got_pvc =
      store_->GetPersistentVolumeClaim("default", "data");
  ASSERT_TRUE(got_pvc.ok());
  EXPECT_EQ(*got_pvc, *pvc);
}

TEST_F(StateStoreTest, CreateIgnoresCallerMetadata) {
  model::PersistentVolume pv = MakeVolume("pv-1");
  pv.metadata.uid = "not-a-uid";
  pv.metadata.resource_version = "42";
  pv.metadata.generation = 9;
  pv.metadata.creation_timestamp = "1999-01-01T00:00:00Z";
  pv.metadata.deletion_timestamp = "1999-01-01T00:00:00Z";
  Result<model::PersistentVolume> created = store_->Create(pv);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(std::regex_match(created->metadata.uid, kUuidV4));
  EXPECT_EQ(created->metadata.resource_version, "1");
  EXPECT_EQ(created->metadata.generation, 1);
  EXPECT_NE(created->metadata.creation_timestamp, "1999-01-01T00:00:00Z");
  EXPECT_FALSE(created->metadata.deletion_timestamp.has_value());
}

TEST_F(StateStoreTest, ClaimWithoutNamespaceIsInDefault) {
  ASSERT_TRUE(store_->Create(MakeClaim("", "data")).ok());
  Result<model::PersistentVolumeClaim> got = store_->GetPersistentVolumeClaim("default", "data");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->metadata.namespace_, "default");
  EXPECT_TRUE(store_->GetPersistentVolumeClaim("", "data").ok());
}

TEST_F(StateStoreTest, VolumesHaveNoNamespace) {
  model::PersistentVolume pv = MakeVolume("pv-1");
  pv.metadata.namespace_ = "ignored";
  Result<model::PersistentVolume> created = store_->Create(pv);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->metadata.namespace_, "");
}

TEST_F(StateStoreTest, EmptyNameIsInvalid) {
  Result<model::PersistentVolume> created = store_->Create(MakeVolume(""));
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kInvalid);
  EXPECT_EQ(*store_->ResourceVersion(), "0");
}

TEST_F(StateStoreTest, TextThatIsNotUtf8IsInvalidNotAnException) {
  model::PersistentVolume pv = MakeVolume("pv-1");
  pv.metadata.labels["app"] = "\xff\xfe";
  Result<model::PersistentVolume> created = store_->Create(pv);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kInvalid);
  EXPECT_THAT(created.status().message(), HasSubstr("pv-1"));
  EXPECT_EQ(store_->GetPersistentVolume("pv-1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->ResourceVersion(), "0");
}

TEST_F(StateStoreTest, CreateOfExistingNameIsAlreadyExists) {
  ASSERT_TRUE(store_->Create(MakeClaim("default", "data")).ok());
  Result<model::PersistentVolumeClaim> again = store_->Create(MakeClaim("default", "data"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "persistentvolumeclaims \"data\" already exists");
  // The same name in another namespace is another claim.
  EXPECT_TRUE(store_->Create(MakeClaim("team-a", "data")).ok());

  ASSERT_TRUE(store_->Create(MakeClass("fast")).ok());
  Result<model::StorageClass> sc = store_->Create(MakeClass("fast"));
  EXPECT_EQ(sc.status().message(), "storageclasses.storage.k8s.io \"fast\" already exists");
}

TEST_F(StateStoreTest, GetAndDeleteOfMissingObjectAreNotFound) {
  Result<model::PersistentVolumeClaim> pvc = store_->GetPersistentVolumeClaim("default", "data");
  ASSERT_FALSE(pvc.ok());
  EXPECT_EQ(pvc.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(pvc.status().message(), "persistentvolumeclaims \"data\" not found");

  Result<model::PersistentVolume> pv = store_->GetPersistentVolume("pv-1");
  EXPECT_EQ(pv.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(pv.status().message(), "persistentvolumes \"pv-1\" not found");

  Result<model::StorageClass> sc = store_->GetStorageClass("fast");
  EXPECT_EQ(sc.status().message(), "storageclasses.storage.k8s.io \"fast\" not found");

  Status s = store_->Delete(Kind::kPersistentVolumeClaim, "default", "data");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "persistentvolumeclaims \"data\" not found");

  Result<model::PersistentVolume> update = store_->Update(MakeVolume("pv-1"));
  EXPECT_EQ(update.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->ResourceVersion(), "0");
}

TEST_F(StateStoreTest, UpdateWithStaleResourceVersionIsConflict) {
  Result<model::PersistentVolumeClaim> v1 = store_->Create(MakeClaim("default", "data"));
  ASSERT_TRUE(v1.ok());
  model::PersistentVolumeClaim change = *v1;
  change.metadata.labels["app"] = "web";
  Result<model::PersistentVolumeClaim> v2 = store_->Update(change);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(v2->metadata.resource_version, "2");

  // `change` still carries version 1.
  change.metadata.labels["app"] = "db";
  Result<model::PersistentVolumeClaim> stale = store_->Update(change);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), StatusCode::kConflict);
  EXPECT_EQ(stale.status().message(),
            "Operation cannot be fulfilled on persistentvolumeclaims \"data\": the object has "
            "been modified; please apply your changes to the latest version and try again");
  EXPECT_EQ(store_->GetPersistentVolumeClaim("default", "data")->metadata.labels.at("app"), "web");

  // No resourceVersion: an unconditional update.
  change.metadata.resource_version.clear();
  Result<model::PersistentVolumeClaim> v3 = store_->Update(change);
  ASSERT_TRUE(v3.ok()) << v3.status().ToString();
  EXPECT_EQ(v3->metadata.resource_version, "3");
  EXPECT_EQ(v3->metadata.labels.at("app"), "db");
}

TEST_F(StateStoreTest, UpdateKeepsUidAndCreationTimestamp) {
  Result<model::PersistentVolume> v1 = store_->Create(MakeVolume("pv-1"));
  ASSERT_TRUE(v1.ok());
  model::PersistentVolume change = *v1;
  change.metadata.uid.clear();
  change.metadata.creation_timestamp = "1999-01-01T00:00:00Z";
  Result<model::PersistentVolume> v2 = store_->Update(change);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->metadata.uid, v1->metadata.uid);
  EXPECT_EQ(v2->metadata.creation_timestamp, v1->metadata.creation_timestamp);

  change.metadata.uid = "11111111-1111-4111-8111-111111111111";
  Result<model::PersistentVolume> wrong_uid = store_->Update(change);
  EXPECT_EQ(wrong_uid.status().code(), StatusCode::kConflict);
}

TEST_F(StateStoreTest, GenerationMovesOnlyWithSpec) {
  Result<model::PersistentVolumeClaim> pvc = store_->Create(MakeClaim("default", "data"));
  ASSERT_TRUE(pvc.ok());
  ASSERT_EQ(pvc->metadata.generation, 1);

  pvc->status.phase = model::ClaimPhase::kBound;  // status only
  pvc = store_->Update(*pvc);
  ASSERT_TRUE(pvc.ok());
  EXPECT_EQ(pvc->metadata.generation, 1);

  pvc->metadata.labels["app"] = "web";  // metadata only
  pvc->metadata.annotations[model::kBindCompletedAnnotation] = "yes";
  pvc->metadata.finalizers.push_back(model::kPvcProtectionFinalizer);
  pvc = store_->Update(*pvc);
  ASSERT_TRUE(pvc.ok());
  EXPECT_EQ(pvc->metadata.generation, 1);

  pvc->spec.request = model::Quantity::FromBytes(2LL << 30);  // spec
  pvc = store_->Update(*pvc);
  ASSERT_TRUE(pvc.ok());
  EXPECT_EQ(pvc->metadata.generation, 2);

  pvc = store_->Update(*pvc);  // nothing changed: a new version, the same generation
  ASSERT_TRUE(pvc.ok());
  EXPECT_EQ(pvc->metadata.generation, 2);
  EXPECT_EQ(pvc->metadata.resource_version, "5");

  Result<model::PersistentVolume> pv = store_->Create(MakeVolume("pv-1"));
  ASSERT_TRUE(pv.ok());
  pv->status.phase = model::VolumePhase::kReleased;
  pv->status.message = "claim gone";
  pv = store_->Update(*pv);
  ASSERT_TRUE(pv.ok());
  EXPECT_EQ(pv->metadata.generation, 1);
  pv->spec.mount_options = {"noatime"};
  pv = store_->Update(*pv);
  ASSERT_TRUE(pv.ok());
  EXPECT_EQ(pv->metadata.generation, 2);

  // A StorageClass has no spec/status split: every field outside metadata counts.
  Result<model::StorageClass> sc = store_->Create(MakeClass("fast"));
  ASSERT_TRUE(sc.ok());
  sc->metadata.annotations[model::kDefaultClassAnnotation] = "true";
  sc = store_->Update(*sc);
  ASSERT_TRUE(sc.ok());
  EXPECT_EQ(sc->metadata.generation, 1);
  sc->allow_volume_expansion = false;
  sc = store_->Update(*sc);
  ASSERT_TRUE(sc.ok());
  EXPECT_EQ(sc->metadata.generation, 2);
  EXPECT_EQ(store_->GetStorageClass("fast")->metadata.generation, 2);
}

TEST_F(StateStoreTest, DeleteRemovesAndHonoursExpectedVersion) {
  Result<model::PersistentVolume> pv = store_->Create(MakeVolume("pv-1"));
  ASSERT_TRUE(pv.ok());
  Status stale = store_->Delete(Kind::kPersistentVolume, "", "pv-1", "999");
  EXPECT_EQ(stale.code(), StatusCode::kConflict);
  EXPECT_EQ(stale.message(),
            "Operation cannot be fulfilled on persistentvolumes \"pv-1\": the object has been "
            "modified; please apply your changes to the latest version and try again");
  EXPECT_TRUE(store_->GetPersistentVolume("pv-1").ok());

  Status s = store_->Delete(Kind::kPersistentVolume, "", "pv-1", pv->metadata.resource_version);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(store_->GetPersistentVolume("pv-1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->ResourceVersion(), "2");  // a delete is a write

  // A new object of the same name is a new object.
  Result<model::PersistentVolume> again = store_->Create(MakeVolume("pv-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->metadata.uid, pv->metadata.uid);
  EXPECT_EQ(again->metadata.resource_version, "3");
}

TEST_F(StateStoreTest, CrudForEveryKind) {
  ASSERT_TRUE(store_->Create(MakeClass("fast")).ok());
  ASSERT_TRUE(store_->Create(MakeClass("slow")).ok());
  ASSERT_TRUE(store_->Create(MakeVolume("pv-b")).ok());
  ASSERT_TRUE(store_->Create(MakeVolume("pv-a")).ok());
  ASSERT_TRUE(store_->Create(MakeClaim("team-b", "logs")).ok());
  ASSERT_TRUE(store_->Create(MakeClaim("default", "data")).ok());
  ASSERT_TRUE(store_->Create(MakeClaim("team-b", "cache")).ok());

  Result<model::StorageClass> sc = store_->GetStorageClass("slow");
  ASSERT_TRUE(sc.ok());
  sc->parameters["pool"] = "archive";
  ASSERT_TRUE(store_->Update(*sc).ok());
  EXPECT_EQ(store_->GetStorageClass("slow")->parameters.at("pool"), "archive");

  Result<model::PersistentVolume> pv = store_->GetPersistentVolume("pv-a");
  ASSERT_TRUE(pv.ok());
  pv->spec.capacity = model::Quantity::FromBytes(5LL << 30);
  ASSERT_TRUE(store_->Update(*pv).ok());
  EXPECT_EQ(store_->GetPersistentVolume("pv-a")->spec.capacity->value(), 5LL << 30);

  auto names = [](const auto& list) {
    std::vector<std::string> out;
    for (const auto& o : list) out.push_back(o.metadata.namespace_ + "/" + o.metadata.name);
    return out;
  };
  EXPECT_THAT(names(*store_->ListStorageClasses()), ::testing::ElementsAre("/fast", "/slow"));
  EXPECT_THAT(names(*store_->ListPersistentVolumes()), ::testing::ElementsAre("/pv-a", "/pv-b"));
  EXPECT_THAT(names(*store_->ListPersistentVolumeClaims()),
              ::testing::ElementsAre("default/data", "team-b/cache", "team-b/logs"));
  EXPECT_THAT(names(*store_->ListPersistentVolumeClaims("team-b")),
              ::testing::ElementsAre("team-b/cache", "team-b/logs"));
  EXPECT_TRUE(store_->ListPersistentVolumeClaims("nowhere")->empty());

  Result<Object> by_kind = store_->Get(Kind::kPersistentVolumeClaim, "team-b", "logs");
  ASSERT_TRUE(by_kind.ok());
  EXPECT_EQ(std::get<model::PersistentVolumeClaim>(*by_kind).metadata.name, "logs");
  EXPECT_EQ(store_->Get(Kind::kPersistentVolumeClaim, "default", "logs").status().code(),
            StatusCode::kNotFound);
  Result<std::vector<Object>> listed = store_->List(Kind::kPersistentVolumeClaim, "team-b");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_EQ(store_->List(Kind::kStorageClass)->size(), 2u);

  ASSERT_TRUE(store_->Delete(Kind::kStorageClass, "", "fast").ok());
  ASSERT_TRUE(store_->Delete(Kind::kPersistentVolume, "", "pv-b").ok());
  ASSERT_TRUE(store_->Delete(Kind::kPersistentVolumeClaim, "team-b", "logs").ok());
  EXPECT_THAT(names(*store_->ListStorageClasses()), ::testing::ElementsAre("/slow"));
  EXPECT_THAT(names(*store_->ListPersistentVolumes()), ::testing::ElementsAre("/pv-a"));
  EXPECT_THAT(names(*store_->ListPersistentVolumeClaims()),
              ::testing::ElementsAre("default/data", "team-b/cache"));
}

TEST_F(StateStoreTest, StateSurvivesReopen) {
  Result<model::PersistentVolume> pv = store_->Create(MakeVolume("pv-1"));
  ASSERT_TRUE(pv.ok());
  store_.reset();
  store_ = OpenOrDie(dir_.path());
  ASSERT_NE(store_, nullptr);
  Result<model::PersistentVolume> got = store_->GetPersistentVolume("pv-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->metadata.uid, pv->metadata.uid);
  // The counter goes on from where it was.
  Result<model::PersistentVolume> next = store_->Create(MakeVolume("pv-2"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->metadata.resource_version, "2");
}

TEST_F(StateStoreTest, SnapshotHoldsEverything) {
  ASSERT_TRUE(store_->Create(MakeClass("fast")).ok());
  ASSERT_TRUE(store_->Create(MakeVolume("pv-1")).ok());
  ASSERT_TRUE(store_->Create(MakeVolume("pv-2")).ok());
  ASSERT_TRUE(store_->Create(MakeClaim("default", "data")).ok());
  Result<Snapshot> snap = store_->ReadSnapshot();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->resource_version, "4");
  ASSERT_EQ(snap->storage_classes.size(), 1u);
  ASSERT_EQ(snap->volumes.size(), 2u);
  ASSERT_EQ(snap->claims.size(), 1u);
  EXPECT_EQ(snap->volumes[0].metadata.name, "pv-1");
  EXPECT_EQ(snap->claims[0].metadata.name, "data");
}

TEST_F(StateStoreTest, BindBatchWritesBothSides) {
  Result<model::PersistentVolume> pv = store_->Create(MakeVolume("pv-1"));
  Result<model::PersistentVolumeClaim> pvc = store_->Create(MakeClaim("default", "data"));
  ASSERT_TRUE(pv.ok() && pvc.ok());
  Bind(&*pv, &*pvc);
  WriteBatch batch;
  batch.Update(*pv);
  batch.Update(*pvc);
  model::Event event;
  event.involved_object = testing::ReferenceTo(*pvc);
  event.type = "Normal";
  event.reason = "Bound";
  event.message = "bound to pv-1";
  batch.AddEvent(event);
  std::vector<Object> written;
  Status s = store_->Apply(batch, &written);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(std::get<model::PersistentVolume>(written[0]).metadata.resource_version, "3");
  EXPECT_EQ(std::get<model::PersistentVolumeClaim>(written[1]).metadata.resource_version, "4");
  EXPECT_EQ(std::get<model::Event>(written[2]).metadata.resource_version, "5");

  EXPECT_EQ(store_->GetPersistentVolume("pv-1")->spec.claim_ref->name, "data");
  EXPECT_EQ(store_->GetPersistentVolume("pv-1")->status.phase, model::VolumePhase::kBound);
  EXPECT_EQ(store_->GetPersistentVolumeClaim("default", "data")->spec.volume_name, "pv-1");
  EXPECT_EQ(store_->GetPersistentVolumeClaim("default", "data")->status.phase,
            model::ClaimPhase::kBound);
}

TEST_F(StateStoreTest, BatchWithOneConflictChangesNothing) {
  Result<model::PersistentVolume> pv = store_->Create(MakeVolume("pv-1"));
  Result<model::PersistentVolumeClaim> pvc = store_->Create(MakeClaim("default", "data"));
  ASSERT_TRUE(pv.ok() && pvc.ok());
  // Someone else writes the claim: our copy is now stale.
  model::PersistentVolumeClaim other = *pvc;
  other.metadata.labels["touched"] = "yes";
  ASSERT_TRUE(store_->Update(other).ok());
  std::string before = *store_->ResourceVersion();

  Bind(&*pv, &*pvc);
  WriteBatch batch;
  batch.Create(MakeVolume("pv-2"));
  batch.Update(*pv);   // fine on its own
  batch.Update(*pvc);  // stale
  batch.Delete(Kind::kPersistentVolume, "", "pv-1");
  std::vector<Object> written;
  Status s = store_->Apply(batch, &written);
  ASSERT_EQ(s.code(), StatusCode::kConflict) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("persistentvolumeclaims \"data\""));
  EXPECT_TRUE(written.empty());

  EXPECT_EQ(*store_->ResourceVersion(), before);
  EXPECT_EQ(store_->GetPersistentVolume("pv-2").status().code(), StatusCode::kNotFound);
  Result<model::PersistentVolume> pv_now = store_->GetPersistentVolume("pv-1");
  ASSERT_TRUE(pv_now.ok());
  EXPECT_FALSE(pv_now->spec.claim_ref.has_value());
  EXPECT_EQ(pv_now->status.phase, model::VolumePhase::kAvailable);
  EXPECT_EQ(pv_now->metadata.resource_version, pv->metadata.resource_version);
}

TEST_F(StateStoreTest, BatchOpsSeeEarlierOpsOfTheSameBatch) {
  WriteBatch batch;
  batch.Create(MakeVolume("pv-1"));
  model::PersistentVolume update = MakeVolume("pv-1");
  update.metadata.labels["stage"] = "2";
  batch.Update(update);  // no resourceVersion: whatever the batch created
  batch.Create(MakeVolume("pv-2"));
  batch.Delete(Kind::kPersistentVolume, "", "pv-2", "3");
  std::vector<Object> written;
  Status s = store_->Apply(batch, &written);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(written.size(), 4u);
  EXPECT_EQ(std::get<model::PersistentVolume>(written[1]).metadata.resource_version, "2");
  EXPECT_EQ(std::get<model::PersistentVolume>(written[3]).metadata.name, "pv-2");
  EXPECT_EQ(store_->GetPersistentVolume("pv-1")->metadata.labels.at("stage"), "2");
  EXPECT_EQ(store_->GetPersistentVolume("pv-2").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->ResourceVersion(), "4");

  // Creating the same name twice in one batch fails the whole batch.
  WriteBatch twice;
  twice.Create(MakeVolume("pv-3"));
  twice.Create(MakeVolume("pv-3"));
  EXPECT_EQ(store_->Apply(twice).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetPersistentVolume("pv-3").status().code(), StatusCode::kNotFound);
}

TEST_F(StateStoreTest, EmptyBatchIsANoOp) {
  EXPECT_TRUE(store_->Apply(WriteBatch()).ok());
  EXPECT_EQ(*store_->ResourceVersion(), "0");
}

model::Event MakeEvent(const model::ObjectReference& ref, std::string reason, std::string message) {
  model::Event event;
  event.involved_object = ref;
  event.type = "Warning";
  event.reason = std::move(reason);
  event.message = std::move(message);
  return event;
}

TEST_F(StateStoreTest, EventsAreKeptPerObject) {
  Result<model::PersistentVolumeClaim> pvc = store_->Create(MakeClaim("default", "data"));
  Result<model::PersistentVolume> pv = store_->Create(MakeVolume("pv-1"));
  ASSERT_TRUE(pvc.ok() && pv.ok());
  model::ObjectReference claim_ref = testing::ReferenceTo(*pvc);
  model::ObjectReference pv_ref{"PersistentVolume", "v1", "", "pv-1", pv->metadata.uid, ""};

  Result<model::Event> first =
      store_->AppendEvent(MakeEvent(claim_ref, "FailedBinding", "no persistent volumes available"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->metadata.namespace_, "default");
  EXPECT_THAT(first->metadata.name, ::testing::StartsWith("data."));
  EXPECT_TRUE(std::regex_match(first->metadata.uid, kUuidV4));
  EXPECT_TRUE(std::regex_match(first->first_timestamp, kRfc3339Utc));
  EXPECT_EQ(first->source_component, "persistentvolume-controller");
  EXPECT_EQ(first->count, 1);

  ASSERT_TRUE(store_->AppendEvent(MakeEvent(pv_ref, "VolumeFailedDelete", "busy")).ok());
  Result<model::Event> pv_event = store_->ListEvents(pv_ref)->at(0);
  EXPECT_EQ(pv_event->metadata.namespace_, "default");  // cluster-scoped objects' events

  // A repeat is folded into the event it repeats.
  Result<model::Event> repeat =
      store_->AppendEvent(MakeEvent(claim_ref, "FailedBinding", "no persistent volumes available"));
  ASSERT_TRUE(repeat.ok());
  EXPECT_EQ(repeat->metadata.name, first->metadata.name);
  EXPECT_EQ(repeat->count, 2);
  ASSERT_TRUE(store_->AppendEvent(MakeEvent(claim_ref, "ProvisioningFailed", "pool full")).ok());

  Result<std::vector<model::Event>> events = store_->ListEvents(claim_ref);
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].reason, "FailedBinding");
  EXPECT_EQ((*events)[0].count, 2);
  EXPECT_EQ((*events)[1].reason, "ProvisioningFailed");
  EXPECT_EQ(store_->ListAllEvents()->size(), 3u);
  EXPECT_EQ(store_->ListAllEvents("default")->size(), 3u);
  EXPECT_TRUE(store_->ListAllEvents("team-a")->empty());

  // A later claim of the same name does not inherit the old one's events.
  model::ObjectReference other_claim = claim_ref;
  other_claim.uid = "22222222-2222-4222-8222-222222222222";
  EXPECT_TRUE(store_->ListEvents(other_claim)->empty());
}

TEST_F(StateStoreTest, EventsAreBounded) {
  store_.reset();
  Options options;
  options.max_events = 5;
  store_ = OpenOrDie(dir_.path(), options);
  ASSERT_NE(store_, nullptr);
  model::ObjectReference ref{"PersistentVolumeClaim", "v1", "default", "data", "", ""};
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(
        store_->AppendEvent(MakeEvent(ref, "FailedBinding", "try " + std::to_string(i))).ok());
  }
  Result<std::vector<model::Event>> events = store_->ListEvents(ref);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 5u);
  EXPECT_EQ(events->front().message, "try 7");  // the newest are kept
  EXPECT_EQ(events->back().message, "try 11");
  std::set<std::string> names;
  for (const model::Event& e : *events) names.insert(e.metadata.name);
  EXPECT_EQ(names.size(), 5u);
}

TEST_F(StateStoreTest, ConcurrentWritersGetDistinctVersions) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10;
  std::vector<std::vector<std::string>> versions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Result<model::PersistentVolume> pv =
            store_->Create(MakeVolume("pv-" + std::to_string(t) + "-" + std::to_string(i)));
        if (pv.ok()) versions[t].push_back(pv->metadata.resource_version);
        (void)store_->ReadSnapshot();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& list : versions) {
    EXPECT_EQ(list.size(), static_cast<size_t>(kPerThread));
    all.insert(list.begin(), list.end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*store_->ResourceVersion(), std::to_string(kThreads * kPerThread));
  EXPECT_EQ(store_->ListPersistentVolumes()->size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(StateStoreTest, SecondOpenOfTheSameDirectoryIsRefused) {
  Result<std::unique_ptr<StateStore>> second = StateStore::Open(dir_.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(second.status().message(), "state directory " + dir_.path().string() +
                                           " is in use by another claimfsd (pid " +
                                           std::to_string(getpid()) + ")");
  store_.reset();
  EXPECT_TRUE(StateStore::Open(dir_.path()).ok());
}

TEST_F(StateStoreTest, SecondProcessIsRefusedWithTheHoldersPid) {
  store_.reset();
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    close(done[1]);
    Result<std::unique_ptr<StateStore>> held = StateStore::Open(dir_.path());
    char c = held.ok() ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(3);
    if (read(done[0], &c, 1) < 0) _exit(4);  // returns 0 when the parent closes its end
    _exit(held.ok() ? 0 : 2);
  }
  close(ready[1]);
  close(done[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');

  Result<std::unique_ptr<StateStore>> mine = StateStore::Open(dir_.path());
  ASSERT_FALSE(mine.ok());
  EXPECT_EQ(mine.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(mine.status().message(), "state directory " + dir_.path().string() +
                                         " is in use by another claimfsd (pid " +
                                         std::to_string(child) + ")");

  close(done[1]);  // lets the child exit, which releases its lock
  close(ready[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Result<std::unique_ptr<StateStore>> after = StateStore::Open(dir_.path());
  EXPECT_TRUE(after.ok()) << after.status().ToString();
}

TEST(StateStoreSchemaTest, NewerSchemaIsRefusedAndLeftUntouched) {
  TempDir dir;
  std::filesystem::path db_path = dir.path() / kDatabaseFileName;
  RawExec(db_path,
          "CREATE TABLE future (x); INSERT INTO future VALUES (1); "
          "PRAGMA user_version = 7;");
  std::string before = ReadFile(db_path);

  Result<std::unique_ptr<StateStore>> store = StateStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.status().message(),
            "state database " + db_path.string() +
                " has schema version 7, newer than this claimfsd understands (" +
                std::to_string(LatestSchemaVersion()) + "); upgrade claimfsd");
  EXPECT_EQ(ReadFile(db_path), before);
  EXPECT_FALSE(std::filesystem::exists(db_path.string() + "-wal"));
  EXPECT_EQ(RawQuery(db_path, "PRAGMA journal_mode"), "delete");
}

TEST(StateStoreSchemaTest, ForeignSqliteDatabaseIsRefused) {
  TempDir dir;
  std::filesystem::path db_path = dir.path() / kDatabaseFileName;
  RawExec(db_path, "CREATE TABLE photos (id INTEGER PRIMARY KEY);");
  std::string before = ReadFile(db_path);
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalid);
  EXPECT_THAT(store.status().message(), HasSubstr("not a claimfs one"));
  EXPECT_EQ(ReadFile(db_path), before);
}

TEST(StateStoreSchemaTest, GarbageFileIsRefused) {
  TempDir dir;
  std::filesystem::path db_path = dir.path() / kDatabaseFileName;
  {
    std::ofstream out(db_path, std::ios::binary);
    out << std::string(8192, 'x');
  }
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(db_path.string()));
  EXPECT_THAT(store.status().message(), HasSubstr("not a database"));
}

TEST(StateStoreSchemaTest, MigratesAVersionOneDatabase) {
  TempDir dir;
  std::filesystem::path db_path = dir.path() / kDatabaseFileName;
  model::PersistentVolume pv = MakeVolume("pv-old");
  pv.metadata.uid = "33333333-3333-4333-8333-333333333333";
  pv.metadata.resource_version = "7";
  pv.metadata.generation = 2;
  pv.metadata.creation_timestamp = "2024-05-01T12:00:00Z";
  std::string body = yaml::ToJson(pv).dump();
  std::string quoted;
  for (char c : body) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  // Schema version 1 as it was written: objects and the counter, no events, no uid column.
  RawExec(db_path,
          "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
          "INSERT INTO meta (key, value) VALUES ('resource_version', 9);"
          "CREATE TABLE objects (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,"
          "  resource_version INTEGER NOT NULL, body TEXT NOT NULL,"
          "  PRIMARY KEY (kind, namespace, name)) WITHOUT ROWID;"
          "INSERT INTO objects VALUES ('PersistentVolume', '', 'pv-old', 7, '" +
              quoted +
              "');"
              "PRAGMA user_version = 1;");

  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawQuery(db_path, "PRAGMA user_version"), std::to_string(LatestSchemaVersion()));
  EXPECT_EQ(RawQuery(db_path, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(db_path, "SELECT uid FROM objects WHERE name = 'pv-old'"), pv.metadata.uid);
  EXPECT_EQ(RawQuery(db_path, "SELECT generation FROM objects WHERE name = 'pv-old'"), "2");

  Result<model::PersistentVolume> got = store->GetPersistentVolume("pv-old");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->metadata.uid, pv.metadata.uid);
  EXPECT_EQ(got->metadata.resource_version, "7");
  EXPECT_EQ(*store->ResourceVersion(), "9");

  // What version 2 and 3 brought works: events, and versions go on from the old counter.
  model::ObjectReference ref{"PersistentVolume", "v1", "", "pv-old", pv.metadata.uid, ""};
  ASSERT_TRUE(store->AppendEvent(MakeEvent(ref, "VolumeFailedDelete", "busy")).ok());
  got->status.phase = model::VolumePhase::kReleased;
  Result<model::PersistentVolume> updated = store->Update(*got);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->metadata.resource_version, "11");
  EXPECT_EQ(updated->metadata.generation, 2);
}

TEST(StateStoreCreatedDirectoriesTest, RecordsReplacesForgetsAndKeepsThemAcrossOpens) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->RecordCreatedDirectory({"/tmp/a", "pv-a", 1, 10}).ok());
    ASSERT_TRUE(store->RecordCreatedDirectory({"/tmp/b", "pv-b", 1, 20}).ok());
    // A directory made again at the same path replaces the record.
    ASSERT_TRUE(store->RecordCreatedDirectory({"/tmp/a", "pv-a2", 2, 11}).ok());
    ASSERT_TRUE(store->ForgetCreatedDirectory("/tmp/b").ok());
    ASSERT_TRUE(store->ForgetCreatedDirectory("/tmp/never").ok());
  }
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  Result<std::vector<CreatedDirectory>> records = store->ListCreatedDirectories();
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(*records, (std::vector<CreatedDirectory>{{"/tmp/a", "pv-a2", 2, 11}}));
}

// A database from before schema 4 knew no records: the volumes it carved from a pool
// (<pool>/<name>) count as created, once; a static volume, or one in a pool under another
// name, does not.
TEST(StateStoreCreatedDirectoriesTest, MigrationAdoptsPoolVolumesOnce) {
  TempDir dir;
  TempDir pools;
  std::filesystem::path pool = pools.path() / "default";
  std::filesystem::create_directories(pool / "pvc-1");
  std::filesystem::create_directories(pool / "someone-elses");
  std::filesystem::create_directories(pools.path() / "static");
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    model::PersistentVolume dynamic = MakeVolume("pvc-1");
    dynamic.spec.host_path->path = (pool / "pvc-1").string();
    model::PersistentVolume misnamed = MakeVolume("pvc-2");
    misnamed.spec.host_path->path = (pool / "someone-elses").string();
    model::PersistentVolume missing = MakeVolume("pvc-3");
    missing.spec.host_path->path = (pool / "pvc-3").string();
    model::PersistentVolume static_pv = MakeVolume("static");
    static_pv.spec.host_path->path = (pools.path() / "static").string();
    for (const auto& pv : {dynamic, misnamed, missing, static_pv}) {
      ASSERT_TRUE(store->Create(pv).ok());
    }
  }
  std::filesystem::path db_path = dir.path() / kDatabaseFileName;
  // Back to schema 3 as it was written.
  RawExec(db_path,
          "DROP TABLE created_directories;"
          "DELETE FROM meta WHERE key = 'pool_volumes_adopted';"
          "PRAGMA user_version = 3;");

  Options options;
  options.pool_paths = {pool.string() + "/"};
  {
    auto store = OpenOrDie(dir.path(), options);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(RawQuery(db_path, "PRAGMA user_version"), std::to_string(LatestSchemaVersion()));
    struct stat st;
    ASSERT_EQ(::lstat((pool / "pvc-1").c_str(), &st), 0);
    Result<std::vector<CreatedDirectory>> records = store->ListCreatedDirectories();
    ASSERT_TRUE(records.ok()) << records.status().ToString();
    EXPECT_EQ(*records, (std::vector<CreatedDirectory>{{(pool / "pvc-1").string(), "pvc-1",
                                                        static_cast<uint64_t>(st.st_dev),
                                                        static_cast<uint64_t>(st.st_ino)}}));
    ASSERT_TRUE(store->ForgetCreatedDirectory((pool / "pvc-1").string()).ok());
  }
  // Once: a later open does not adopt again what claimfsd has since forgotten.
  auto store = OpenOrDie(dir.path(), options);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->ListCreatedDirectories()->empty());
}

TEST(StateStoreSchemaTest, MigrationsAreOrderedAndEndAtTheLatest) {
  int last = 0;
  for (const Migration& step : Migrations()) {
    EXPECT_EQ(step.version, last + 1);
    last = step.version;
  }
  EXPECT_EQ(last, LatestSchemaVersion());
}

}  // namespace
}  // namespace claimfs::store
