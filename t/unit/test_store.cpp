// Unit tests of the state directory (store.h): atomic writes, modes, the
// engine lock and certificate file names.
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
#include "acme/identifier.h"
#include "acme/store.h"
#include "temp_dir.h"

namespace {

using acme::Identifier;
using acme::KeyType;
using acme::Store;

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

TEST(Store, WriteAndReadBack) {
    TempDir tmp;
    Store store(tmp.path());
    EXPECT_EQ(store.path("a.crt"), tmp.path() + "/a.crt");
    store.write("a.crt", "hello");
    EXPECT_EQ(store.read("a.crt"), std::optional<std::string>("hello"));
    store.write("a.crt", "replaced");
    EXPECT_EQ(store.read("a.crt"), std::optional<std::string>("replaced"));
    store.write("empty", "");
    EXPECT_EQ(store.read("empty"), std::optional<std::string>(""));
    std::string big(1 << 20, 'x');
    store.write("big", big);
    EXPECT_EQ(store.read("big"), std::optional<std::string>(big));
}

TEST(Store, ModesAreExactWhateverTheUmask) {
    TempDir tmp;
    Store store(tmp.path());
    mode_t old = ::umask(077);
    store.write("public.crt", "c", 0644);
    store.write("secret.key", "k", 0600);
    ::umask(old);
    EXPECT_EQ(mode_of(tmp.path() + "/public.crt"), 0644u);
    EXPECT_EQ(mode_of(tmp.path() + "/secret.key"), 0600u);
    // Replacing keeps the new mode, not the old file's.
    store.write("public.crt", "c2", 0600);
    EXPECT_EQ(mode_of(tmp.path() + "/public.crt"), 0600u);
}

TEST(Store, NoTemporaryFilesLeft) {
    TempDir tmp;
    Store store(tmp.path());
    for (int i = 0; i < 5; ++i) store.write("f" + std::to_string(i % 2), "data");
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"f0", "f1"}));
}

TEST(Store, FailedWriteLeavesNoTemporaryFile) {
    TempDir tmp;
    Store store(tmp.path());
    ASSERT_EQ(::mkdir((tmp.path() + "/sub").c_str(), 0700), 0);
    // rename() of a file over a directory fails (EISDIR).
    try {
        store.write("sub", "data");
        FAIL() << "write over a directory succeeded";
    } catch (const acme::Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find(tmp.path() + "/sub"), std::string::npos) << what;
        EXPECT_NE(what.find("directory"), std::string::npos) << what;
    }
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"sub"}));
}

TEST(Store, UnfinishedWritesAreRemoved) {
    TempDir tmp;
    Store store(tmp.path());
    store.write("example.test-1a2b3c4d.crt", "certificate");
    // What a writer killed between create and rename leaves.
    for (const char* name : {"example.test-1a2b3c4d.key.tmp.4242.4243", "account.json.tmp.7.7"}) {
        FILE* f = std::fopen((tmp.path() + "/" + name).c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fclose(f);
    }
    // Names that only look alike stay.
    for (const char* name : {"notes.tmp.txt", "a.tmp.1", "a.tmp.1.x", ".tmp.1.2"}) {
        store.write(name, "kept");
    }
    EXPECT_EQ(store.remove_unfinished(), 2u);
    EXPECT_EQ(list(tmp.path()), (std::set<std::string>{"example.test-1a2b3c4d.crt", "notes.tmp.txt",
                                                       "a.tmp.1", "a.tmp.1.x", ".tmp.1.2"}));
    EXPECT_EQ(store.remove_unfinished(), 0u);
}

TEST(Store, ReadMissingIsNullopt) {
    TempDir tmp;
    Store store(tmp.path());
    EXPECT_FALSE(store.read("nope").has_value());
    Store nowhere(tmp.path() + "/does/not/exist");
    EXPECT_FALSE(nowhere.read("nope").has_value());
}

TEST(Store, ReadErrorThrows) {
    TempDir tmp;
    Store store(tmp.path());
    ASSERT_EQ(::mkdir((tmp.path() + "/sub").c_str(), 0700), 0);
    EXPECT_THROW(store.read("sub"), acme::Error);
}

TEST(Store, WriteCreatesMissingDirectory) {
    TempDir tmp;
    Store store(tmp.path() + "/a/b/");
    store.write("x", "1");
    EXPECT_EQ(store.read("x"), std::optional<std::string>("1"));
    EXPECT_EQ(store.dir(), tmp.path() + "/a/b");
}

TEST(Store, LockIsExclusiveBetweenStores) {
    TempDir tmp;
    auto first = std::make_unique<Store>(tmp.path());
    Store second(tmp.path());
    EXPECT_TRUE(first->try_lock());
    EXPECT_TRUE(first->try_lock());  // already held: still true
    // flock belongs to the open file description, so a second open in the
    // same process conflicts just like another process would.
    EXPECT_FALSE(second.try_lock());
    first.reset();
    EXPECT_TRUE(second.try_lock());
    EXPECT_EQ(mode_of(tmp.path() + "/.lock"), 0600u);
}

TEST(Store, LockConflictsAcrossFork) {
    TempDir tmp;
    Store store(tmp.path());
    ASSERT_TRUE(store.try_lock());
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        Store other(tmp.path());
        ::_exit(other.try_lock() ? 1 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Store, BasenameFormatAndKnownHash) {
    // sha256("dns:a.example.test\ndns:example.test\necdsa:256") starts with the suffix.
    std::string b =
        acme::certificate_basename({dns("example.test"), dns("a.example.test")}, KeyType::ecdsa256);
    EXPECT_EQ(b, "example.test-adbc3a60");
}

TEST(Store, BasenameIsStableAndOrderIndependent) {
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

TEST(Store, BasenameDiffersByKeyTypeAndNames) {
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

TEST(Store, BasenameOfWildcard) {
    std::string b = acme::certificate_basename({dns("*.example.test")}, KeyType::ecdsa256);
    EXPECT_EQ(b.rfind("_.example.test-", 0), 0u);
    EXPECT_EQ(b.find('*'), std::string::npos);
}

TEST(Store, BasenameNeedsIdentifiers) {
    EXPECT_THROW(acme::certificate_basename({}, KeyType::ecdsa256), acme::Error);
}

}  // namespace
