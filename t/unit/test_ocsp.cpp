// Unit tests of the OCSP checks (ocsp.h) against real responses: the
// openssl command line is the responder (`openssl ocsp -index ... -reqin`),
// for a CA, a leaf and an index made here.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include "acme/ocsp.h"
#include "temp_dir.h"

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void spit(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
}

void run(const std::string& cmd) {
    ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
}

struct Pki {
    TempDir dir;
    std::string d = dir.path();
    std::string chain;  // leaf + issuer
    std::string serial;

    Pki() {
        std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        for (const char* ca : {"ca", "other"}) {
            run("openssl req -x509 " + ec + " -keyout " + d + "/" + ca + ".key -out " + d + "/" +
                ca + ".crt -days 2 -subj /CN=" + ca);
        }
        run("openssl req -new " + ec + " -keyout " + d + "/leaf.key -out " + d +
            "/leaf.csr -subj /CN=leaf.test");
        spit(d + "/ext", "authorityInfoAccess=OCSP;URI:http://127.0.0.1:8888/ocsp\n");
        run("openssl x509 -req -in " + d + "/leaf.csr -CA " + d + "/ca.crt -CAkey " + d +
            "/ca.key -set_serial 0x1234 -days 1 -extfile " + d + "/ext -out " + d + "/leaf.crt");
        chain = slurp(d + "/leaf.crt") + slurp(d + "/ca.crt");
    }

    // The responder's answer for the leaf with that index line status.
    std::string respond(char status, const std::string& signer = "ca", int days = 1) {
        std::string line = std::string(1, status) + "\t300101000000Z\t" +
                           (status == 'R' ? "260101000000Z" : "") +
                           "\t1234\tunknown\t/CN=leaf.test\n";
        spit(d + "/index", line);
        spit(d + "/req.der", acme::make_ocsp_request(chain));
        run("openssl ocsp -index " + d + "/index -CA " + d + "/ca.crt -rsigner " + d + "/" +
            signer + ".crt -rkey " + d + "/" + signer + ".key -reqin " + d + "/req.der -respout " +
            d + "/resp.der -ndays " + std::to_string(days));
        return slurp(d + "/resp.der");
    }
};

TEST(Ocsp, ResponderUrlAndRequest) {
    Pki pki;
    EXPECT_EQ(acme::ocsp_responder_url(pki.chain), "http://127.0.0.1:8888/ocsp");
    EXPECT_EQ(acme::ocsp_responder_url(slurp(pki.d + "/ca.crt")), "") << "no AIA: no URL";
    EXPECT_FALSE(acme::make_ocsp_request(pki.chain).empty());
    EXPECT_THROW(acme::make_ocsp_request(slurp(pki.d + "/leaf.crt")), std::exception)
        << "a leaf alone has no issuer to name";
}

TEST(Ocsp, GoodVerifiedWithRefreshAtHalfTheValidity) {
    Pki pki;
    std::time_t now = std::time(nullptr);
    acme::OcspStatus s = acme::check_ocsp_response(pki.respond('V'), pki.chain, true, now);
    EXPECT_TRUE(s.good) << s.error;
    EXPECT_NEAR(static_cast<double>(s.this_update), static_cast<double>(now), 60);
    EXPECT_EQ(s.next_update - s.this_update, 86400);
    EXPECT_EQ(s.refresh_at, s.this_update + 43200);
    EXPECT_FALSE(acme::check_ocsp_response(pki.respond('V'), pki.chain, true, now + 2 * 86400).good)
        << "an expired response is not stapled";
}

TEST(Ocsp, RevokedAndForeignSignatures) {
    Pki pki;
    std::time_t now = std::time(nullptr);
    acme::OcspStatus s = acme::check_ocsp_response(pki.respond('R'), pki.chain, true, now);
    EXPECT_FALSE(s.good);
    EXPECT_EQ(s.error, "revoked");

    std::string foreign = pki.respond('V', "other");
    s = acme::check_ocsp_response(foreign, pki.chain, true, now);
    EXPECT_FALSE(s.good) << "ssl_stapling_verify: signed by another CA";
    EXPECT_NE(s.error.find("not signed by the issuer"), std::string::npos) << s.error;
    EXPECT_TRUE(acme::check_ocsp_response(foreign, pki.chain, false, now).good)
        << "without ssl_stapling_verify it is taken as it is";

    EXPECT_FALSE(acme::check_ocsp_response("junk", pki.chain, false, now).good);
    EXPECT_EQ(acme::ocsp_refresh_time(1000, 0), 1000 + 3600);
}

}  // namespace
