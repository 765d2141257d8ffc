// OCSP request building and response checking with OpenSSL's OCSP API.
#include "ocsp.h"

#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

#include "crypto.h"
#include "error.h"

namespace acme {

namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using OcspRequestPtr = std::unique_ptr<OCSP_REQUEST, Deleter<OCSP_REQUEST, OCSP_REQUEST_free>>;
using OcspResponsePtr = std::unique_ptr<OCSP_RESPONSE, Deleter<OCSP_RESPONSE, OCSP_RESPONSE_free>>;
using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, Deleter<OCSP_BASICRESP, OCSP_BASICRESP_free>>;
using OcspCertIdPtr = std::unique_ptr<OCSP_CERTID, Deleter<OCSP_CERTID, OCSP_CERTID_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;

struct StackFree {
    void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), StackFree>;

X509Ptr parse_pem(const std::string& pem) {
    std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return nullptr;
    return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

struct LeafAndIssuer {
    X509Ptr leaf, issuer;
};

LeafAndIssuer leaf_and_issuer(std::string_view pem_chain) {
    std::vector<std::string> pems = split_pem_chain(pem_chain);
    LeafAndIssuer r;
    if (!pems.empty()) r.leaf = parse_pem(pems[0]);
    if (pems.size() > 1) r.issuer = parse_pem(pems[1]);
    return r;
}

OcspCertIdPtr cert_id(const LeafAndIssuer& c) {
    return OcspCertIdPtr(OCSP_cert_to_id(EVP_sha1(), c.leaf.get(), c.issuer.get()));
}

std::time_t to_time(const ASN1_GENERALIZEDTIME* t) {
    if (t == nullptr) return 0;
    struct tm tm {};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return timegm(&tm);
}

}  // namespace

std::string ocsp_responder_url(std::string_view pem_chain) {
    std::vector<std::string> pems = split_pem_chain(pem_chain);
    if (pems.empty()) return "";
    X509Ptr leaf = parse_pem(pems[0]);
    if (!leaf) return "";
    STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(leaf.get());
    std::string url;
    if (urls != nullptr && sk_OPENSSL_STRING_num(urls) > 0) url = sk_OPENSSL_STRING_value(urls, 0);
    X509_email_free(urls);
    return url;
}

std::string make_ocsp_request(std::string_view pem_chain) {
    LeafAndIssuer c = leaf_and_issuer(pem_chain);
    if (!c.leaf || !c.issuer) throw Error("OCSP request: the chain has no issuer certificate");
    OcspRequestPtr req(OCSP_REQUEST_new());
    OCSP_CERTID* id = OCSP_cert_to_id(EVP_sha1(), c.leaf.get(), c.issuer.get());
    if (!req || id == nullptr || OCSP_request_add0_id(req.get(), id) == nullptr) {
        OCSP_CERTID_free(id);
        throw Error("OCSP request: " + openssl_errors());
    }
    unsigned char* der = nullptr;
    int len = i2d_OCSP_REQUEST(req.get(), &der);
    if (len <= 0) throw Error("OCSP request: " + openssl_errors());
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
}

std::time_t ocsp_refresh_time(std::time_t this_update, std::time_t next_update) {
    if (next_update <= this_update) return this_update + 3600;
    return this_update + (next_update - this_update) / 2;
}

OcspStatus check_ocsp_response(std::string_view der, std::string_view pem_chain, bool verify,
                               std::time_t now) {
    OcspStatus s;
    LeafAndIssuer c = leaf_and_issuer(pem_chain);
    if (!c.leaf || !c.issuer) {
        s.error = "the chain has no issuer certificate";
        return s;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    OcspResponsePtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
    if (!resp) {
        s.error = "not an OCSP response";
        return s;
    }
    int rs = OCSP_response_status(resp.get());
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        s.error = std::string("responder answered \"") + OCSP_response_status_str(rs) + "\"";
        return s;
    }
    OcspBasicPtr basic(OCSP_response_get1_basic(resp.get()));
    if (!basic) {
        s.error = "no basic OCSP response";
        return s;
    }
    if (verify) {
        // The issuer is the anchor: a response signed by it, or by a
        // responder certificate it issued for OCSP signing, verifies.
        X509StorePtr store(X509_STORE_new());
        X509StackPtr certs(sk_X509_new_null());
        if (!store || !certs || X509_STORE_add_cert(store.get(), c.issuer.get()) != 1 ||
            X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN) != 1 ||
            !sk_X509_push(certs.get(), X509_dup(c.issuer.get()))) {
            s.error = "cannot set up the verification: " + openssl_errors();
            return s;
        }
        if (OCSP_basic_verify(basic.get(), certs.get(), store.get(), 0) != 1) {
            s.error = "not signed by the issuer or its responder: " + openssl_errors();
            return s;
        }
    }
    OcspCertIdPtr id = cert_id(c);
    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *revoked = nullptr, *this_update = nullptr, *next_update = nullptr;
    if (!id || OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked,
                                     &this_update, &next_update) != 1) {
        s.error = "the response is not about this certificate";
        return s;
    }
    s.this_update = to_time(this_update);
    s.next_update = to_time(next_update);
    s.refresh_at = ocsp_refresh_time(s.this_update, s.next_update);
    // Five minutes of clock skew either way, as OpenSSL's own tools allow.
    if (s.this_update > now + 300 || (s.next_update != 0 && s.next_update < now - 300)) {
        s.error = "the response is not current";
        return s;
    }
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        s.error = "revoked";
    } else if (status != V_OCSP_CERTSTATUS_GOOD) {
        s.error = "unknown to the responder";
    } else {
        s.good = true;
    }
    return s;
}

}  // namespace acme
