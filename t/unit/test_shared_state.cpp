// Unit tests of the shared-memory area (shared_state.h): layout, http-01 and
// tls-alpn-01 answers, generations, and use from several processes and threads.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "acme/error.h"
#include "acme/shared_state.h"

namespace {

using acme::SharedState;

// Anonymous shared mapping, as nginx's shared zones are.
class SharedMemory {
public:
    explicit SharedMemory(std::size_t size) : size_(size) {
        base_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (base_ == MAP_FAILED) throw std::runtime_error("mmap failed");
    }
    ~SharedMemory() { ::munmap(base_, size_); }
    void* base() const { return base_; }
    std::size_t size() const { return size_; }

private:
    void* base_;
    std::size_t size_;
};

TEST(SharedState, FormatAndFormatted) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    EXPECT_FALSE(state.formatted());
    state.format();
    EXPECT_TRUE(state.formatted());
    // Another size means another layout.
    SharedState other(mem.base(), mem.size() - 4096);
    EXPECT_FALSE(other.formatted());
}

TEST(SharedState, SlotCounts) {
    EXPECT_GE(SharedState::challenge_slots(SharedState::min_size()), 4u);
    EXPECT_GE(SharedState::certificate_slots(SharedState::min_size()), 4u);
    EXPECT_GE(SharedState::tls_alpn_slots(SharedState::min_size()), 4u);
    EXPECT_GE(SharedState::challenge_slots(SharedState::default_size), 1000u);
    EXPECT_GE(SharedState::certificate_slots(SharedState::default_size), 1000u);
    EXPECT_GE(SharedState::tls_alpn_slots(SharedState::default_size), 1000u);
    EXPECT_EQ(SharedState::challenge_slots(0), 0u);
}

TEST(SharedState, TooSmallAreaIsRejected) {
    SharedMemory mem(4096);
    ASSERT_LT(std::size_t{64}, SharedState::min_size());
    SharedState state(mem.base(), 64);
    EXPECT_THROW(state.format(), acme::Error);
    EXPECT_FALSE(state.formatted());
    EXPECT_FALSE(state.publish_http01("t", "t.k"));
    EXPECT_EQ(state.generation("x"), 0u);
}

TEST(SharedState, PublishFindWithdraw) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    EXPECT_FALSE(state.find_http01("token1").has_value());
    EXPECT_TRUE(state.publish_http01("token1", "token1.thumb"));
    EXPECT_TRUE(state.publish_http01("token2", "token2.thumb"));
    EXPECT_EQ(state.find_http01("token1"), std::optional<std::string>("token1.thumb"));
    EXPECT_EQ(state.find_http01("token2"), std::optional<std::string>("token2.thumb"));
    EXPECT_FALSE(state.find_http01("token").has_value());
    EXPECT_FALSE(state.find_http01("token12").has_value());
    EXPECT_FALSE(state.find_http01("").has_value());

    // Publishing again replaces the answer instead of taking a second slot.
    EXPECT_TRUE(state.publish_http01("token1", "token1.other"));
    EXPECT_EQ(state.find_http01("token1"), std::optional<std::string>("token1.other"));

    state.withdraw_http01("token1");
    EXPECT_FALSE(state.find_http01("token1").has_value());
    EXPECT_EQ(state.find_http01("token2"), std::optional<std::string>("token2.thumb"));
    state.withdraw_http01("token1");  // harmless
}

TEST(SharedState, LimitsOfTokenAndAnswer) {
    SharedMemory mem(SharedState::min_size());
    SharedState state(mem.base(), mem.size());
    state.format();
    std::string token(SharedState::max_token, 't');
    std::string answer(SharedState::max_key_authorization, 'a');
    EXPECT_TRUE(state.publish_http01(token, answer));
    EXPECT_EQ(state.find_http01(token), std::optional<std::string>(answer));
    EXPECT_FALSE(state.publish_http01(token + "t", "x"));
    EXPECT_FALSE(state.publish_http01("x", answer + "a"));
    EXPECT_FALSE(state.publish_http01("", "x"));
}

TEST(SharedState, FullTableReturnsFalse) {
    SharedMemory mem(SharedState::min_size());
    SharedState state(mem.base(), mem.size());
    state.format();
    std::size_t slots = SharedState::challenge_slots(mem.size());
    for (std::size_t i = 0; i < slots; ++i) {
        ASSERT_TRUE(state.publish_http01("tok" + std::to_string(i), "answer")) << i;
    }
    EXPECT_FALSE(state.publish_http01("one-too-many", "answer"));
    // Existing tokens can still be updated, and withdrawing frees a slot.
    EXPECT_TRUE(state.publish_http01("tok0", "new"));
    state.withdraw_http01("tok3");
    EXPECT_TRUE(state.publish_http01("one-too-many", "answer"));
    EXPECT_EQ(state.find_http01("one-too-many"), std::optional<std::string>("answer"));
}

TEST(SharedState, TlsAlpnPublishFindWithdraw) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    const std::string d1(32, '1'), d2(32, '2');
    EXPECT_FALSE(state.find_tls_alpn01("example.test").has_value());
    EXPECT_TRUE(state.publish_tls_alpn01("example.test", "example.test", d1));
    EXPECT_TRUE(state.publish_tls_alpn01("1.0.0.127.in-addr.arpa", "127.0.0.1", d2));

    auto dns = state.find_tls_alpn01("example.test");
    ASSERT_TRUE(dns.has_value());
    EXPECT_EQ(dns->identifier, "example.test");
    EXPECT_EQ(dns->digest, d1);
    auto ip = state.find_tls_alpn01("1.0.0.127.in-addr.arpa");
    ASSERT_TRUE(ip.has_value());
    EXPECT_EQ(ip->identifier, "127.0.0.1");
    EXPECT_EQ(ip->digest, d2);
    EXPECT_FALSE(state.find_tls_alpn01("example").has_value());
    EXPECT_FALSE(state.find_tls_alpn01("").has_value());
    // http-01 answers are another table.
    EXPECT_FALSE(state.find_http01("example.test").has_value());

    state.withdraw_tls_alpn01("example.test", d2);  // not that answer: kept
    EXPECT_TRUE(state.find_tls_alpn01("example.test").has_value());
    state.withdraw_tls_alpn01("example.test", d1);
    EXPECT_FALSE(state.find_tls_alpn01("example.test").has_value());
    EXPECT_TRUE(state.find_tls_alpn01("1.0.0.127.in-addr.arpa").has_value());
}

TEST(SharedState, WithdrawAllChallengesKeepsGenerations) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    EXPECT_EQ(state.withdraw_all_challenges(), 0u);
    ASSERT_TRUE(state.publish_http01("token-a", "token-a.thumb"));
    ASSERT_TRUE(state.publish_http01("token-b", "token-b.thumb"));
    ASSERT_TRUE(state.publish_tls_alpn01("example.test", "example.test", std::string(32, 'x')));
    state.certificate_updated("example.test-1234");

    EXPECT_EQ(state.withdraw_all_challenges(), 3u);
    EXPECT_FALSE(state.find_http01("token-a").has_value());
    EXPECT_FALSE(state.find_http01("token-b").has_value());
    EXPECT_FALSE(state.find_tls_alpn01("example.test").has_value());
    EXPECT_EQ(state.generation("example.test-1234"), 1u);
    // The slots are free again.
    EXPECT_TRUE(state.publish_http01("token-c", "token-c.thumb"));
    EXPECT_EQ(state.find_http01("token-c").value_or(""), "token-c.thumb");
}

TEST(SharedState, TlsAlpnNewestAnswerWins) {
    // Two orders for one name (an ECDSA and an RSA certificate) may publish
    // at once: the newest answer is served, and withdrawing it brings the
    // older one back.
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    const std::string d1(32, '1'), d2(32, '2');
    EXPECT_TRUE(state.publish_tls_alpn01("example.test", "example.test", d1));
    EXPECT_TRUE(state.publish_tls_alpn01("example.test", "example.test", d2));
    EXPECT_EQ(state.find_tls_alpn01("example.test")->digest, d2);
    EXPECT_TRUE(state.publish_tls_alpn01("example.test", "example.test", d1));  // again
    EXPECT_EQ(state.find_tls_alpn01("example.test")->digest, d1);
    state.withdraw_tls_alpn01("example.test", d1);
    EXPECT_EQ(state.find_tls_alpn01("example.test")->digest, d2);
}

TEST(SharedState, TlsAlpnLimits) {
    SharedMemory mem(SharedState::min_size());
    SharedState state(mem.base(), mem.size());
    state.format();
    const std::string d(32, 'd');
    std::string name(SharedState::max_server_name, 'n');
    EXPECT_TRUE(state.publish_tls_alpn01(name, name, d));
    EXPECT_EQ(state.find_tls_alpn01(name)->identifier, name);
    EXPECT_FALSE(state.publish_tls_alpn01(name + "n", name + "n", d));
    EXPECT_FALSE(state.publish_tls_alpn01("", "", d));
    EXPECT_FALSE(state.publish_tls_alpn01("x.test", "x.test", "short digest"));
    EXPECT_FALSE(state.publish_tls_alpn01("x.arpa", std::string(49, '1'), d));

    std::size_t slots = SharedState::tls_alpn_slots(mem.size());
    for (std::size_t i = 1; i < slots; ++i) {
        ASSERT_TRUE(state.publish_tls_alpn01("n" + std::to_string(i), "", d)) << i;
    }
    EXPECT_FALSE(state.publish_tls_alpn01("one-too-many", "", d));
    state.withdraw_tls_alpn01("n1", d);
    EXPECT_TRUE(state.publish_tls_alpn01("one-too-many", "", d));
}

TEST(SharedState, Generations) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    EXPECT_EQ(state.global_generation(), 0u);
    EXPECT_EQ(state.generation("example.test-1a2b3c4d"), 0u);
    state.certificate_updated("example.test-1a2b3c4d");
    std::uint64_t g1 = state.generation("example.test-1a2b3c4d");
    EXPECT_GT(g1, 0u);
    EXPECT_EQ(state.global_generation(), 1u);
    state.certificate_updated("other.test-00000000");
    EXPECT_EQ(state.generation("example.test-1a2b3c4d"), g1);
    EXPECT_GT(state.generation("other.test-00000000"), g1);
    state.certificate_updated("example.test-1a2b3c4d");
    EXPECT_GT(state.generation("example.test-1a2b3c4d"), g1);
    EXPECT_EQ(state.global_generation(), 3u);
}

TEST(SharedState, LongCertificateIdsAreDistinguished) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    // Same first max_cert_id bytes, different endings.
    std::string prefix(SharedState::max_cert_id + 10, 'a');
    state.certificate_updated(prefix + "-11111111");
    EXPECT_GT(state.generation(prefix + "-11111111"), 0u);
    EXPECT_EQ(state.generation(prefix + "-22222222"), 0u);
    state.certificate_updated(prefix + "-22222222");
    EXPECT_NE(state.generation(prefix + "-11111111"), state.generation(prefix + "-22222222"));
}

TEST(SharedState, FullCertificateTableStillSignalsUpdates) {
    SharedMemory mem(SharedState::min_size());
    SharedState state(mem.base(), mem.size());
    state.format();
    std::size_t slots = SharedState::certificate_slots(mem.size());
    for (std::size_t i = 0; i < slots; ++i) state.certificate_updated("c" + std::to_string(i));
    EXPECT_EQ(state.generation("late"), 0u);
    state.certificate_updated("late");
    // No slot for it: reported with the global generation, never as 0.
    EXPECT_EQ(state.generation("late"), state.global_generation());
    EXPECT_GT(state.generation("late"), 0u);
}

TEST(SharedState, FormatResets) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    state.publish_http01("token", "answer");
    state.publish_tls_alpn01("name", "name", std::string(32, 'd'));
    state.certificate_updated("cert");
    state.format();
    EXPECT_TRUE(state.formatted());
    EXPECT_FALSE(state.find_http01("token").has_value());
    EXPECT_FALSE(state.find_tls_alpn01("name").has_value());
    EXPECT_EQ(state.generation("cert"), 0u);
    EXPECT_EQ(state.global_generation(), 0u);
}

TEST(SharedState, WorksAcrossFork) {
    SharedMemory mem(SharedState::default_size);
    SharedState parent(mem.base(), mem.size());
    parent.format();
    parent.publish_http01("from-parent", "p");

    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        SharedState child(mem.base(), mem.size());
        bool ok = child.formatted() &&
                  child.find_http01("from-parent") == std::optional<std::string>("p") &&
                  child.publish_http01("from-child", "c");
        child.certificate_updated("cert");
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(parent.find_http01("from-child"), std::optional<std::string>("c"));
    EXPECT_EQ(parent.generation("cert"), 1u);
    EXPECT_EQ(parent.global_generation(), 1u);
}

TEST(SharedState, ConcurrentProcessesAndThreads) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    constexpr int processes = 4, threads = 4, rounds = 300;

    std::vector<pid_t> pids;
    for (int p = 0; p < processes; ++p) {
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            SharedState s(mem.base(), mem.size());
            std::atomic<bool> ok{true};
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t) {
                ts.emplace_back([&, t] {
                    for (int r = 0; r < rounds; ++r) {
                        std::string token = "p" + std::to_string(p) + "t" + std::to_string(t) +
                                            "r" + std::to_string(r % 7);
                        std::string answer = token + ".answer";
                        if (!s.publish_http01(token, answer)) ok = false;
                        if (s.find_http01(token) != std::optional<std::string>(answer)) ok = false;
                        s.certificate_updated("cert" + std::to_string(t));
                        s.withdraw_http01(token);
                        if (s.find_http01(token).has_value()) ok = false;
                    }
                });
            }
            for (auto& th : ts) th.join();
            ::_exit(ok ? 0 : 1);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }
    // Every bump was counted exactly once: the lock serialised them.
    EXPECT_EQ(state.global_generation(), std::uint64_t{processes} * threads * rounds);
}

// The lock word: pid in the low 32 bits, start time in the high ones.
std::atomic<std::uint64_t>* lock_word(SharedMemory& mem) {
    // It follows magic, version and size in the header.
    return reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(mem.base()) + 16);
}

TEST(SharedState, DeadOwnerLockIsRecovered) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    // A child that exits at once leaves a pid that no longer exists.
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(0);
    ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
    lock_word(mem)->store((std::uint64_t{12345} << 32) | static_cast<std::uint32_t>(pid));
    EXPECT_TRUE(state.publish_http01("after-crash", "ok"));
    EXPECT_EQ(state.find_http01("after-crash"), std::optional<std::string>("ok"));
    EXPECT_EQ(lock_word(mem)->load(), 0u);
}

// The owner's pid now belongs to another, live process (its start time
// differs): the lock is recovered all the same.
TEST(SharedState, OwnerWhosePidWasReusedIsDead) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::pause();
        ::_exit(0);
    }
    lock_word(mem)->store((std::uint64_t{1} << 32) | static_cast<std::uint32_t>(pid));
    EXPECT_TRUE(state.publish_http01("reused", "ok"));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

// A live owner that does not run (stopped): waiters sleep instead of
// spinning, and get the lock once it is released.
TEST(SharedState, WaitersSleepWhileTheOwnerIsStopped) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::pause();
        ::_exit(0);
    }
    // The child's real start time: it is a live owner.
    std::string stat;
    {
        std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
        ASSERT_NE(f, nullptr);
        char buf[1024];
        std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
        std::fclose(f);
        stat.assign(buf, n);
    }
    const char* p = std::strrchr(stat.c_str(), ')');
    for (int field = 2; field < 22; ++p) {
        if (*p == ' ') ++field;
    }
    auto started = static_cast<std::uint32_t>(std::strtoull(p, nullptr, 10));
    lock_word(mem)->store((std::uint64_t{started} << 32) | static_cast<std::uint32_t>(pid));
    ::kill(pid, SIGSTOP);

    std::clock_t cpu_before = std::clock();
    std::thread releaser([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        lock_word(mem)->store(0);
    });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(state.publish_http01("stopped", "ok"));
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    releaser.join();
    double cpu = static_cast<double>(std::clock() - cpu_before) / CLOCKS_PER_SEC;
    EXPECT_GE(waited, 0.45);
    EXPECT_LT(cpu, 0.2) << "the waiter burnt " << cpu << " s of CPU in " << waited << " s";
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

// The zone outlives reloads: each reload keeps only the certificates it
// configures, so names that change reload after reload never fill the
// table (before, after about 2,400 changes every unknown id reported the
// global generation and every renewal made workers re-read everything).
TEST(SharedState, SlotsOfUnconfiguredCertificatesAreReleased) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    const std::size_t slots = SharedState::certificate_slots(mem.size());
    for (std::size_t round = 0; round < 2 * slots + 100; ++round) {
        std::string kept = "kept.test-00000000";
        std::string changing = "name" + std::to_string(round) + ".test-12345678";
        state.retain_certificates({kept, changing});
        state.certificate_updated(changing);
        ASSERT_EQ(state.generation(changing), state.global_generation()) << "round " << round;
        ASSERT_EQ(state.generation("never.test-00000000"), 0u) << "round " << round;
    }
    // What is configured keeps its generation.
    state.certificate_updated("kept.test-00000000");
    std::uint64_t kept_gen = state.generation("kept.test-00000000");
    EXPECT_EQ(state.retain_certificates({"kept.test-00000000"}), 1u);
    EXPECT_EQ(state.generation("kept.test-00000000"), kept_gen);
    EXPECT_EQ(state.retain_certificates({"kept.test-00000000"}), 0u);
}

TEST(SharedState, UpdatedSinceListsWhatChanged) {
    SharedMemory mem(SharedState::size_for(10000));
    SharedState state(mem.base(), mem.size());
    state.format();
    ASSERT_GE(SharedState::certificate_slots(mem.size()), 10000u);
    for (int i = 0; i < 10000; ++i) state.certificate_updated("c" + std::to_string(i) + "-0");
    std::vector<std::string> ids;
    std::uint64_t seen = state.global_generation();
    EXPECT_TRUE(state.updated_since(seen, &ids));
    EXPECT_TRUE(ids.empty());
    state.certificate_updated("c17-0");
    state.certificate_updated("c9999-0");
    ASSERT_TRUE(state.updated_since(seen, &ids));
    EXPECT_EQ(ids, (std::vector<std::string>{"c17-0", "c9999-0"}));
    // Every certificate keeps its own generation in the hashed table.
    for (int i = 0; i < 10000; ++i) {
        ASSERT_GT(state.generation("c" + std::to_string(i) + "-0"), 0u) << i;
    }
    EXPECT_EQ(state.generation("c17-0"), seen + 1);
    EXPECT_EQ(state.generation("c10000-0"), 0u);
    // Further back than the journal reaches: the caller compares everything.
    EXPECT_FALSE(state.updated_since(0, &ids));
    EXPECT_FALSE(state.updated_since(state.global_generation() + 1, &ids));
}

TEST(SharedState, UpdatedSinceAfterSlotsWereReleased) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    for (int i = 0; i < 500; ++i) state.certificate_updated("c" + std::to_string(i));
    std::uint64_t before = state.global_generation();
    std::vector<std::string> keep;
    for (int i = 0; i < 500; i += 2) keep.push_back("c" + std::to_string(i));
    EXPECT_EQ(state.retain_certificates(keep), 250u);
    // The table was rebuilt: older journal entries are not trusted.
    std::vector<std::string> ids;
    EXPECT_FALSE(state.updated_since(before - 1, &ids));
    for (int i = 0; i < 500; ++i) {
        std::uint64_t gen = state.generation("c" + std::to_string(i));
        ASSERT_EQ(gen != 0, i % 2 == 0) << i;
    }
    std::uint64_t seen = state.global_generation();
    state.certificate_updated("c4");
    state.certificate_updated("new");
    ASSERT_TRUE(state.updated_since(seen, &ids));
    EXPECT_EQ(ids, (std::vector<std::string>{"c4", "new"}));
    EXPECT_EQ(state.generation("c4"), seen + 1);
    EXPECT_EQ(state.generation("new"), seen + 2);
}

TEST(SharedState, SizeForHoldsTheCertificates) {
    for (std::size_t n : {1u, 100u, 2000u, 10000u, 50000u}) {
        EXPECT_GE(SharedState::certificate_slots(SharedState::size_for(n)), n) << n;
    }
    EXPECT_GE(SharedState::size_for(1), SharedState::min_size());
}

// A default string_view has a null data(); copying it must not reach
// memcpy (UBSan: null pointer passed as argument 2). The tls-alpn-01 case
// is what every DNS identifier did (`make unit SANITIZE=undefined` failed).
TEST(SharedState, EmptyViewsWithoutData) {
    SharedMemory mem(SharedState::default_size);
    SharedState state(mem.base(), mem.size());
    state.format();
    EXPECT_TRUE(state.publish_http01("token", std::string_view()));
    EXPECT_EQ(state.find_http01("token"), std::optional<std::string>(""));
    EXPECT_TRUE(state.publish_tls_alpn01("example.test", std::string_view(), std::string(32, 'd')));
    EXPECT_EQ(state.find_tls_alpn01("example.test")->identifier, "example.test");
}

TEST(SharedState, Http01TokenCheck) {
    EXPECT_TRUE(acme::is_http01_token("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
    EXPECT_TRUE(acme::is_http01_token(std::string(SharedState::max_token, 'a')));
    EXPECT_FALSE(acme::is_http01_token(""));
    EXPECT_FALSE(acme::is_http01_token(std::string(SharedState::max_token + 1, 'a')));
    EXPECT_FALSE(acme::is_http01_token("a/b"));
    EXPECT_FALSE(acme::is_http01_token("..%2f"));
    EXPECT_FALSE(acme::is_http01_token(std::string("a\0b", 3)));
    EXPECT_FALSE(acme::is_http01_token("abc="));
}

}  // namespace
