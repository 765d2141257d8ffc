// Unit tests of the file storage (file_storage.h): atomic writes, modes, the
// engine lock, certificate leases, listing, and certificate file names.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>

#include "acme/error.h"
#include "acme/file_storage.h"
#include "acme/identifier.h"
#include "acme/storage.h"
#include "temp_dir.h"

namespace {

using acme::FileStorage;
using acme::Identifier;
using acme::KeyType;

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

TEST(CertificateBasename, NeedsIdentifiers) {
    EXPECT_THROW(acme::certificate_basename({}, KeyType::ecdsa256), acme::Error);
}

}  // namespace
