// Unit tests of what the store trusts (file_io.h read_trusted_file, and
// FileStorage::load/load_secret on top of it): the root master reads files
// a worker could have planted, so links, FIFOs, foreign owners and loose
// modes are refused with a reason that names the file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "acme/error.h"
#include "acme/file_io.h"
#include "acme/file_storage.h"
#include "temp_dir.h"

namespace {

using acme::Access;
using acme::FileStorage;
using acme::TrustedRead;

std::string refusal(const std::string& path, bool secret, uid_t owner = ::geteuid()) {
    std::string out, why;
    struct stat st;
    TrustedRead r = acme::read_trusted_file(path, secret, owner, &out, &st, &why);
    if (r == TrustedRead::ok) return "";
    if (r == TrustedRead::missing) return "missing";
    return why;
}

TEST(FileTrust, WhatTheEngineWritesIsTrusted) {
    TempDir tmp;
    FileStorage store(tmp.path());
    store.store("a.crt", "certificate", Access::shared);
    store.store("a.key", "key", Access::secret);
    EXPECT_EQ(refusal(tmp.path() + "/a.crt", false), "");
    EXPECT_EQ(refusal(tmp.path() + "/a.key", true), "");
    EXPECT_EQ(store.load("a.crt"), std::optional<std::string>("certificate"));
    EXPECT_EQ(store.load_secret("a.key"), std::optional<std::string>("key"));
    EXPECT_EQ(refusal(tmp.path() + "/none", false), "missing");
    EXPECT_FALSE(store.load_secret("none"));
}

TEST(FileTrust, SymbolicLinksAreRefused) {
    TempDir tmp;
    FileStorage store(tmp.path());
    store.store("target", "secret of root", Access::secret);
    ASSERT_EQ(::symlink((tmp.path() + "/target").c_str(), (tmp.path() + "/a.key").c_str()), 0);
    EXPECT_EQ(refusal(tmp.path() + "/a.key", true),
              "\"" + tmp.path() + "/a.key\" is a symbolic link");
    EXPECT_THROW(store.load_secret("a.key"), acme::Error);
    EXPECT_THROW(store.load("a.key"), acme::Error);
}

TEST(FileTrust, HardLinksAreRefused) {
    TempDir tmp;
    FileStorage store(tmp.path());
    store.store("a.crt", "certificate", Access::shared);
    ASSERT_EQ(::link((tmp.path() + "/a.crt").c_str(), (tmp.path() + "/b.crt").c_str()), 0);
    EXPECT_EQ(refusal(tmp.path() + "/a.crt", false),
              "\"" + tmp.path() + "/a.crt\" has other hard links");
    EXPECT_THROW(store.load("b.crt"), acme::Error);
}

// A FIFO would block the master's open() forever.
TEST(FileTrust, FifosAreRefusedWithoutBlocking) {
    TempDir tmp;
    ASSERT_EQ(::mkfifo((tmp.path() + "/a.crt").c_str(), 0644), 0);
    EXPECT_EQ(refusal(tmp.path() + "/a.crt", false),
              "\"" + tmp.path() + "/a.crt\" is not a regular file");
}

TEST(FileTrust, ModesAndOwners) {
    TempDir tmp;
    FileStorage store(tmp.path());
    store.store("a.key", "key", Access::secret);
    std::string key = tmp.path() + "/a.key";
    ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
    EXPECT_EQ(refusal(key, true), "\"" + key + "\" is readable by group or others");
    EXPECT_EQ(refusal(key, false), "") << "a certificate may be 0644";
    EXPECT_THROW(store.load_secret("a.key"), acme::Error);
    ASSERT_EQ(::chmod(key.c_str(), 0666), 0);
    EXPECT_EQ(refusal(key, false), "\"" + key + "\" is writable by group or others");
    ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
    // Another user's file, unless that user is root (these tests may run
    // as root: then give the file away).
    if (::geteuid() == 0) {
        ASSERT_EQ(::chown(key.c_str(), 12345, 12345), 0);
        EXPECT_EQ(refusal(key, true, 54321),
                  "\"" + key + "\" belongs to uid 12345, not to root or uid 54321");
        EXPECT_EQ(refusal(key, true, 12345), "");
        ASSERT_EQ(::chown(key.c_str(), 0, 0), 0);
        EXPECT_EQ(refusal(key, true, 54321), "") << "root's files are trusted";
    }
}

}  // namespace
