// Unit tests of the file storage (file_storage.h): atomic writes, modes, the
// engine lock, certificate leases, listing, and certificate file names.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "acme/error.h"
#include "acme/file_storage.h"
#include "acme/identifier.h"
#include "acme/storage.h"
#include "temp_dir.h"

namespace {

using acme::FileStorage;
using acme::Identifier;
using acme::KeyType;
using std::chrono::seconds;

std::set<std::string> list(const std::string& dir) {
    std::set<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.insert(n);
    }
    ::closedir(d);
    return names;
}

mode_t mode_of(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
}

Identifier dns(const std::string& v) { return Identifier{Identifier::Type::dns, v}; }

TEST(FileStorage, WriteAndReadBack) {
    TempDir tmp;
    FileStorage store(tmp.path());
    EXPECT_EQ(store.path("a.crt"), tmp.path() + "/a.crt");
    store.store("a.crt", "hello", acme::Access::shared);
    EXPECT_EQ(store.load("a.crt"), std::optional<std::string>("hello"));
    store.store("a.crt", "replaced", acme::Access::shared);
    EXPECT_EQ(store.load("a.crt"), std::optional<std::string>("replaced"));
    store.store("empty", "", acme::Access::shared);
    EXPECT_EQ(store.load("empty"), std::optional<std::string>(""));
    std::string big(1 << 20, 'x');
    store.store("big", big, acme::Access::shared);
    EXPECT_EQ(store.load("big"), std::optional<std::string>(big));
}

TEST(FileStorage, ModesAreExactWhateverTheUmask) {
    TempDir tmp;
    FileStorage store(tmp.path());
    mode_t old = ::umask(077);
    store.store("public.crt", "c", acme::Access::shared);
    store.store("secret.key", "k", acme::Access::secret);
    ::umask(old);
    EXPECT_EQ(mode_of(tmp.path() + "/public.crt"), 0644u);
    EXPECT_EQ(mode_of(tmp.path() + "/secret.key"), 0600u);
    // Replacing keeps the new mode, not the old file's.
    store.store("public.crt", "c2", acme::Access::secret);
    EXPECT_EQ(mode_of(tmp.path() + "/public.crt"), 0600u);
}

TEST(FileStorage, NoTemporaryFilesLeft) {
    TempDir tmp;
    FileStorage store(tmp.path());
    for (int i = 0; i < 5; ++i)
        store.store("f" + std::to_string(i % 2), "data", acme::Access::shared);
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"f0", "f1"}));
}

TEST(FileStorage, FailedWriteLeavesNoTemporaryFile) {
    TempDir tmp;
    FileStorage store(tmp.path());
    ASSERT_EQ(::mkdir((tmp.path() + "/sub").c_str(), 0700), 0);
    // rename() of a file over a directory fails (EISDIR).
    try {
        store.store("sub", "data", acme::Access::shared);
        FAIL() << "write over a directory succeeded";
    } catch (const acme::Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find(tmp.path() + "/sub"), std::string::npos) << what;
        EXPECT_NE(what.find("directory"), std::string::npos) << what;
    }
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"sub"}));
}

// The saved order's write: in place, no temporary file, the same modes and
// the same refusal of links as store().
TEST(FileStorage, HintIsWrittenInPlace) {
    TempDir tmp;
    FileStorage store(tmp.path() + "/state");
    mode_t old = ::umask(077);
    store.store_hint("c-1a2b3c4d.order.json", "a longer first value", acme::Access::secret);
    ::umask(old);
    std::string path = tmp.path() + "/state/c-1a2b3c4d.order.json";
    struct stat first;
    ASSERT_EQ(::stat(path.c_str(), &first), 0);
    EXPECT_EQ(first.st_mode & 07777, 0600u);
    store.store_hint("c-1a2b3c4d.order.json", "short", acme::Access::secret);
    EXPECT_EQ(store.load_secret("c-1a2b3c4d.order.json"), std::optional<std::string>("short"));
    struct stat second;
    ASSERT_EQ(::stat(path.c_str(), &second), 0);
    EXPECT_EQ(second.st_ino, first.st_ino) << "replaced, not rewritten";
    EXPECT_EQ(list(tmp.path() + "/state"), (std::set<std::string>{"c-1a2b3c4d.order.json"}));
    store.store_hint("shared.json", "s", acme::Access::shared);
    EXPECT_EQ(mode_of(tmp.path() + "/state/shared.json"), 0644u);

    // A symbolic link is not followed, and nothing is written through it.
    std::string victim = tmp.path() + "/victim";
    FILE* f = std::fopen(victim.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("untouched", f);
    std::fclose(f);
    ASSERT_EQ(::symlink(victim.c_str(), (tmp.path() + "/state/link.order.json").c_str()), 0);
    EXPECT_THROW(store.store_hint("link.order.json", "x", acme::Access::secret), acme::Error);
    FileStorage outside(tmp.path());
    EXPECT_EQ(outside.load("victim"), std::optional<std::string>("untouched"));
}

TEST(FileStorage, UnfinishedWritesAreRemoved) {
    TempDir tmp;
    FileStorage store(tmp.path());
    store.store("example.test-1a2b3c4d.crt", "certificate", acme::Access::shared);
    // What a writer killed between create and rename leaves.
    for (const char* name : {"example.test-1a2b3c4d.key.tmp.4242.4243", "account.json.tmp.7.7"}) {
        FILE* f = std::fopen((tmp.path() + "/" + name).c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fclose(f);
    }
    // Names that only look alike stay.
    for (const char* name : {"notes.tmp.txt", "a.tmp.1", "a.tmp.1.x", ".tmp.1.2"}) {
        store.store(name, "kept", acme::Access::shared);
    }
    EXPECT_EQ(store.remove_unfinished(), 2u);
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"example.test-1a2b3c4d.crt", "notes.tmp.txt",
                                                       "a.tmp.1", "a.tmp.1.x", ".tmp.1.2"}));
    EXPECT_EQ(store.remove_unfinished(), 0u);
}

TEST(FileStorage, ReadMissingIsNullopt) {
    TempDir tmp;
    FileStorage store(tmp.path());
    EXPECT_FALSE(store.load("nope").has_value());
    FileStorage nowhere(tmp.path() + "/does/not/exist");
    EXPECT_FALSE(nowhere.load("nope").has_value());
}

TEST(FileStorage, ReadErrorThrows) {
    TempDir tmp;
    FileStorage store(tmp.path());
    ASSERT_EQ(::mkdir((tmp.path() + "/sub").c_str(), 0700), 0);
    EXPECT_THROW(store.load("sub"), acme::Error);
}

TEST(FileStorage, WriteCreatesMissingDirectory) {
    TempDir tmp;
    FileStorage store(tmp.path() + "/a/b/");
    store.store("x", "1", acme::Access::shared);
    EXPECT_EQ(store.load("x"), std::optional<std::string>("1"));
    EXPECT_EQ(store.dir(), tmp.path() + "/a/b");
}

TEST(FileStorage, LockIsExclusiveBetweenStores) {
    TempDir tmp;
    auto first = std::make_unique<FileStorage>(tmp.path());
    FileStorage second(tmp.path());
    EXPECT_TRUE(first->try_lock());
    EXPECT_TRUE(first->try_lock());  // already held: still true
    // flock belongs to the open file description, so a second open in the
    // same process conflicts just like another process would.
    EXPECT_FALSE(second.try_lock());
    first.reset();
    EXPECT_TRUE(second.try_lock());
    EXPECT_EQ(mode_of(tmp.path() + "/.lock"), 0600u);
}

TEST(FileStorage, LockConflictsAcrossFork) {
    TempDir tmp;
    FileStorage store(tmp.path());
    ASSERT_TRUE(store.try_lock());
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        FileStorage other(tmp.path());
        ::_exit(other.try_lock() ? 1 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---- certificate leases

TEST(FileStorage, LeaseIsExclusiveUntilReleased) {
    TempDir tmp;
    FileStorage first(tmp.path());
    FileStorage second(tmp.path());
    std::unique_ptr<acme::Lease> lease = first.try_lease("example.test-1a2b3c4d", seconds(600));
    ASSERT_NE(lease, nullptr);
    EXPECT_TRUE(lease->renew());
    EXPECT_EQ(second.try_lease("example.test-1a2b3c4d", seconds(600)), nullptr);
    // A second descriptor of the same engine does not get it either.
    EXPECT_EQ(first.try_lease("example.test-1a2b3c4d", seconds(600)), nullptr);
    lease.reset();
    std::unique_ptr<acme::Lease> again = second.try_lease("example.test-1a2b3c4d", seconds(600));
    EXPECT_NE(again, nullptr);
    EXPECT_EQ(first.try_lease("example.test-1a2b3c4d", seconds(600)), nullptr);
    // Leases need no files of their own.
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{".lock"}));
}

TEST(FileStorage, LeasesOnDifferentCertificatesDoNotConflict) {
    TempDir tmp;
    FileStorage first(tmp.path());
    FileStorage second(tmp.path());
    std::vector<std::unique_ptr<acme::Lease>> held;
    for (int i = 0; i < 20; ++i) {
        FileStorage& store = i % 2 ? first : second;
        std::string id =
            "name" + std::to_string(i) + ".example.test-0000000" + std::to_string(i % 10);
        held.push_back(store.try_lease(id, seconds(600)));
        EXPECT_NE(held.back(), nullptr) << id;
    }
}

TEST(FileStorage, LeaseAndStoreLockAreIndependent) {
    TempDir tmp;
    FileStorage engine(tmp.path());
    FileStorage other(tmp.path());
    ASSERT_TRUE(engine.try_lock());
    // Another engine on the same store may still lease a certificate...
    std::unique_ptr<acme::Lease> lease = other.try_lease("example.test-1a2b3c4d", seconds(600));
    EXPECT_NE(lease, nullptr);
    // ...and a lease does not give the store lock.
    EXPECT_FALSE(other.try_lock());
    EXPECT_EQ(engine.try_lease("example.test-1a2b3c4d", seconds(600)), nullptr);
}

TEST(FileStorage, LeaseHeldByAnotherProcessEndsWithIt) {
    TempDir tmp;
    int ready[2], done[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(done), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        FileStorage store(tmp.path());
        std::unique_ptr<acme::Lease> lease = store.try_lease("example.test-1a2b3c4d", seconds(600));
        char c = lease ? 'y' : 'n';
        if (::write(ready[1], &c, 1) != 1) ::_exit(2);
        // Holds the lease until killed.
        if (::read(done[0], &c, 1) < 0) ::_exit(3);
        ::_exit(0);
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    EXPECT_EQ(c, 'y');
    FileStorage store(tmp.path());
    EXPECT_EQ(store.try_lease("example.test-1a2b3c4d", seconds(600)), nullptr);
    EXPECT_NE(store.try_lease("other.test-1a2b3c4d", seconds(600)), nullptr);
    // Killed, without a chance to release anything.
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_NE(store.try_lease("example.test-1a2b3c4d", seconds(600)), nullptr);
    for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
}

// ---- listing, stat, store_all

TEST(FileStorage, ListByPrefix) {
    TempDir tmp;
    FileStorage store(tmp.path());
    for (const char* key :
         {"example.test-1a2b3c4d.crt", "example.test-1a2b3c4d.key", "example.test-1a2b3c4d.json",
          "example.test-99999999.crt", "www.example.test-1a2b3c4d.crt", "account.key"}) {
        store.store(key, "x", acme::Access::shared);
    }
    ASSERT_TRUE(store.try_lock());  // creates .lock
    auto lease = store.try_lease("example.test-1a2b3c4d", seconds(60));
    // A write that never finished.
    FILE* f = std::fopen((tmp.path() + "/example.test-1a2b3c4d.key.tmp.4242.4243").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);

    auto listed = [&](const std::string& prefix) {
        std::vector<std::string> v = store.list(prefix);
        std::set<std::string> s(v.begin(), v.end());
        EXPECT_EQ(s.size(), v.size()) << "duplicates for " << prefix;
        return s;
    };
    EXPECT_EQ(listed("example.test-1a2b3c4d"),
              (std::set<std::string>{"example.test-1a2b3c4d.crt", "example.test-1a2b3c4d.key",
                                     "example.test-1a2b3c4d.json"}));
    EXPECT_EQ(listed("example.test-"),
              (std::set<std::string>{"example.test-1a2b3c4d.crt", "example.test-1a2b3c4d.key",
                                     "example.test-1a2b3c4d.json", "example.test-99999999.crt"}));
    EXPECT_EQ(listed(""),
              (std::set<std::string>{"example.test-1a2b3c4d.crt", "example.test-1a2b3c4d.key",
                                     "example.test-1a2b3c4d.json", "example.test-99999999.crt",
                                     "www.example.test-1a2b3c4d.crt", "account.key"}));
    EXPECT_TRUE(listed(".").empty());
    EXPECT_TRUE(listed("nothing").empty());
    EXPECT_TRUE(FileStorage(tmp.path() + "/missing").list("").empty());
}

TEST(FileStorage, StatVersionChangesWithEveryStore) {
    TempDir tmp;
    FileStorage store(tmp.path());
    EXPECT_FALSE(store.stat("a.crt"));
    std::time_t before = std::time(nullptr);
    std::set<std::string> versions;
    std::string previous;
    for (int i = 0; i < 50; ++i) {
        // The same content each time: only the write itself is new.
        store.store("a.crt", "same", acme::Access::shared);
        std::optional<acme::ItemStat> st = store.stat("a.crt");
        ASSERT_TRUE(st);
        EXPECT_NE(st->version, previous) << "store " << i;
        EXPECT_FALSE(st->version.empty());
        EXPECT_GE(st->modified, before - 1);
        EXPECT_LE(st->modified, std::time(nullptr) + 1);
        // Reading does not change it.
        EXPECT_EQ(store.stat("a.crt")->version, st->version);
        previous = st->version;
        versions.insert(st->version);
    }
    // Never an earlier version again, or a reader that cached it would
    // miss a change.
    EXPECT_EQ(versions.size(), 50u);
    store.remove("a.crt");
    EXPECT_FALSE(store.stat("a.crt"));
}

TEST(FileStorage, StoreAllWritesInOrderAndStopsAtAFailure) {
    TempDir tmp;
    FileStorage store(tmp.path());
    store.store_all(
        {{"a.key", "key", acme::Access::secret}, {"a.crt", "chain", acme::Access::shared}});
    EXPECT_EQ(store.load("a.key"), std::optional<std::string>("key"));
    EXPECT_EQ(store.load("a.crt"), std::optional<std::string>("chain"));
    EXPECT_EQ(mode_of(tmp.path() + "/a.key"), 0600u);
    EXPECT_EQ(mode_of(tmp.path() + "/a.crt"), 0644u);

    // The second item cannot be renamed into place (a directory is in the
    // way): the first is, the third is not, and no temporary file is left.
    ASSERT_EQ(::mkdir((tmp.path() + "/b.crt").c_str(), 0700), 0);
    EXPECT_THROW(store.store_all({{"b.key", "key", acme::Access::secret},
                                  {"b.crt", "chain", acme::Access::shared},
                                  {"b.json", "{}", acme::Access::shared}}),
                 acme::Error);
    EXPECT_EQ(store.load("b.key"), std::optional<std::string>("key"));
    EXPECT_FALSE(store.load("b.json"));
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"a.key", "a.crt", "b.key", "b.crt"}));
}

// A write that fails (a full disk) before every item is written renames
// none of them: the old key stays beside the old certificate. (Each item
// was renamed as soon as written, so a full disk after the new key left a
// pair that did not match, and the master served the fallback after the
// next reload.)
TEST(FileStorage, StoreAllReplacesNothingWhenAWriteFails) {
    TempDir tmp;
    FileStorage store(tmp.path());
    store.store_all(
        {{"a.key", "old key", acme::Access::secret}, {"a.crt", "old chain", acme::Access::shared}});
    // The certificate's temporary file cannot be created: a directory of
    // that name (this thread's) is in the way.
    std::string in_the_way = tmp.path() + "/a.crt.tmp." + std::to_string(::getpid()) + "." +
                             std::to_string(static_cast<long>(::syscall(SYS_gettid)));
    ASSERT_EQ(::mkdir(in_the_way.c_str(), 0700), 0);
    try {
        store.store_all({{"a.key", "new key", acme::Access::secret},
                         {"a.crt", "new chain", acme::Access::shared}});
        FAIL() << "no exception";
    } catch (const acme::Error& e) {
        EXPECT_NE(std::string(e.what()).find(in_the_way), std::string::npos) << e.what();
    }
    EXPECT_EQ(store.load("a.key"), std::optional<std::string>("old key"));
    EXPECT_EQ(store.load("a.crt"), std::optional<std::string>("old chain"));
    ASSERT_EQ(::rmdir(in_the_way.c_str()), 0);
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"a.key", "a.crt"}));
}

TEST(CertificateBasename, FormatAndKnownHash) {
    // sha256("dns:a.example.test\ndns:example.test\necdsa:256") starts with the suffix.
    std::string b =
        acme::certificate_basename({dns("example.test"), dns("a.example.test")}, KeyType::ecdsa256);
    EXPECT_EQ(b, "example.test-adbc3a60");
}

TEST(CertificateBasename, IsStableAndOrderIndependent) {
    std::vector<Identifier> ids{dns("example.test"), dns("www.example.test")};
    std::string a = acme::certificate_basename(ids, KeyType::ecdsa256);
    EXPECT_EQ(a, acme::certificate_basename(ids, KeyType::ecdsa256));
    ASSERT_EQ(a.size(), std::string("example.test-").size() + 8);
    EXPECT_EQ(a.rfind("example.test-", 0), 0u);

    std::vector<Identifier> reversed{dns("www.example.test"), dns("example.test")};
    std::string r = acme::certificate_basename(reversed, KeyType::ecdsa256);
    EXPECT_EQ(r.rfind("www.example.test-", 0), 0u);
    EXPECT_EQ(r.substr(r.size() - 8), a.substr(a.size() - 8));
}

TEST(CertificateBasename, DiffersByKeyTypeAndNames) {
    std::vector<Identifier> ids{dns("example.test")};
    std::set<std::string> names;
    for (KeyType t : {KeyType::ecdsa256, KeyType::ecdsa384, KeyType::rsa2048, KeyType::rsa3072,
                      KeyType::rsa4096}) {
        names.insert(acme::certificate_basename(ids, t));
    }
    EXPECT_EQ(names.size(), 5u);
    EXPECT_NE(acme::certificate_basename(ids, KeyType::ecdsa256),
              acme::certificate_basename({dns("example.test"), dns("www.example.test")},
                                         KeyType::ecdsa256));
    Identifier ip{Identifier::Type::ip, "192.0.2.1"};
    Identifier ip_as_dns{Identifier::Type::dns, "192.0.2.1"};
    EXPECT_NE(acme::certificate_basename({ip}, KeyType::ecdsa256),
              acme::certificate_basename({ip_as_dns}, KeyType::ecdsa256));
}

TEST(CertificateBasename, OfWildcard) {
    std::string b = acme::certificate_basename({dns("*.example.test")}, KeyType::ecdsa256);
    EXPECT_EQ(b.rfind("_.example.test-", 0), 0u);
    EXPECT_EQ(b.find('*'), std::string::npos);
}

// A DNS name may have 253 characters; every item of its certificate must
// still fit in a file name (255 bytes), temporary names included.
TEST(CertificateBasename, LongNamesFitInFileNames) {
    std::string label(61, 'a');
    std::string longest = label + "." + label + "." + label + "." + label + ".tests";
    ASSERT_EQ(longest.size(), 253u);
    std::string b = acme::certificate_basename({dns(longest)}, KeyType::ecdsa256);
    EXPECT_EQ(b.size(), acme::max_basename_name + 9);
    EXPECT_EQ(b.rfind(longest.substr(0, acme::max_basename_name) + "-", 0), 0u);
    // Names that differ only after the cut get different ids.
    std::string other = longest.substr(0, 252) + "x";
    EXPECT_NE(b, acme::certificate_basename({dns(other)}, KeyType::ecdsa256));
    // Short names are as they were.
    EXPECT_EQ(
        acme::certificate_basename({dns("example.test"), dns("a.example.test")}, KeyType::ecdsa256),
        "example.test-adbc3a60");

    TempDir tmp;
    FileStorage store(tmp.path());
    store.store(b + acme::storage_keys::order_suffix, "{}", acme::Access::secret);
    EXPECT_EQ(store.load(b + acme::storage_keys::order_suffix), std::optional<std::string>("{}"));
}

TEST(CertificateBasename, NeedsIdentifiers) {
    EXPECT_THROW(acme::certificate_basename({}, KeyType::ecdsa256), acme::Error);
}

}  // namespace
