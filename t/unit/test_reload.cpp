// Unit tests of acme_reload's engine parts: the ReloadSink (issuances become
// one paced request), the reload process's pacing and its loop over a real
// socket pair (only "reload" is understood; end of file ends it).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "acme/log.h"
#include "acme/reload_gate.h"
#include "acme/reload_sink.h"

namespace {

using namespace std::chrono_literals;

acme::events::Issued issued(const std::string& name) {
    acme::events::Issued e;
    e.cert = {name + "-id", name};
    return e;
}

TEST(ReloadPacer, AtOnceThenOncePerDelay) {
    acme::ReloadPacer pacer(10s);
    auto t0 = acme::ReloadPacer::Clock::now();
    EXPECT_FALSE(pacer.due());
    pacer.requested(t0);
    ASSERT_TRUE(pacer.due());
    EXPECT_EQ(*pacer.due(), t0);  // nothing before: at once
    pacer.reloaded(t0);
    EXPECT_FALSE(pacer.due());
    pacer.requested(t0 + 2s);
    pacer.requested(t0 + 3s);  // joins the waiting one
    ASSERT_TRUE(pacer.due());
    EXPECT_EQ(*pacer.due(), t0 + 10s);
    pacer.reloaded(t0 + 10s);
    pacer.requested(t0 + 25s);  // long after: at once again
    EXPECT_EQ(*pacer.due(), t0 + 25s);
}

TEST(ReloadGate, OnlyReloadIsUnderstoodAndEndOfFileEnds) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    std::atomic<int> reloads{0};
    auto gate = std::async(std::launch::async, [&] {
        return acme::run_reload_gate(sv[1], 1000ms, [&] { reloads++; });
    });
    auto send = [&](const char* m) { ASSERT_GT(::send(sv[0], m, std::strlen(m), 0), 0); };
    send("quit");
    send("reload now");
    send("reloa");
    send("kill 1");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(reloads, 0) << "anything but \"reload\" is ignored";
    send("reload");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(reloads, 1) << "the first request at once";
    send("reload");
    send("reload");
    send("reload");
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(reloads, 1) << "within the delay: waiting";
    std::this_thread::sleep_for(900ms);
    EXPECT_EQ(reloads, 2) << "one reload at the end of the delay for all three";
    ::close(sv[0]);
    ASSERT_EQ(gate.wait_for(2s), std::future_status::ready) << "end of file ends the gate";
    EXPECT_EQ(gate.get(), 2);
    ::close(sv[1]);
}

TEST(ReloadSink, IssuancesWithinTheDelayMakeOneRequest) {
    acme::NullLogger log;
    std::atomic<int> sent{0};
    acme::ReloadSink sink(300ms, log, [&](std::string&) {
        sent++;
        return true;
    });
    sink.on_event(acme::events::Failed{});  // not an issuance
    std::this_thread::sleep_for(400ms);
    EXPECT_EQ(sent, 0);
    sink.on_event(issued("a.test"));
    std::this_thread::sleep_for(100ms);
    sink.on_event(issued("b.test"));
    EXPECT_EQ(sent, 0) << "the delay first";
    std::this_thread::sleep_for(400ms);
    EXPECT_EQ(sent, 1) << "one request for both";
    sink.on_event(issued("c.test"));
    std::this_thread::sleep_for(150ms);
    EXPECT_EQ(sent, 1) << "not sooner than the delay after the previous one";
    std::this_thread::sleep_for(350ms);
    EXPECT_EQ(sent, 2);
    EXPECT_EQ(sink.requests(), 2);
}

TEST(ReloadSink, AFailedRequestIsLogged) {
    struct Lines : acme::Logger {
        std::mutex m;
        std::string text;
        void log(acme::LogLevel, std::string_view s) override {
            std::lock_guard<std::mutex> lk(m);
            text += std::string(s) + "\n";
        }
    } log;
    {
        acme::ReloadSink sink(50ms, log, [](std::string& error) {
            error = "no reload process";
            return false;
        });
        sink.on_event(issued("a.test"));
        std::this_thread::sleep_for(300ms);
    }
    EXPECT_NE(log.text.find("asking nginx for a graceful reload: new certificate for \"a.test\""),
              std::string::npos)
        << log.text;
    EXPECT_NE(log.text.find("cannot ask nginx for a reload: no reload process"), std::string::npos)
        << log.text;
}

}  // namespace
