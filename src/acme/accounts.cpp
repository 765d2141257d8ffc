// Account keys and registration for an issuer.
#include "accounts.h"

#include "error.h"
#include "file_io.h"
#include "json.h"
#include "text.h"

namespace acme {

namespace {

// Issuers may share a storage and so its account.key.
std::mutex account_key_mutex;

// The lease under which a missing account key is made: engines that share
// a store (a cluster's first start) would otherwise each make and register
// one, and all but the last would order under an account the store lost.
constexpr const char* account_key_lease = "account.key";
constexpr std::chrono::seconds account_key_lease_ttl{60};
// How long to wait for another engine making the key.
constexpr std::chrono::seconds account_key_wait{30};

std::optional<PrivateKey> stored_account_key(const IssuerState& is, const std::string& where) {
    auto pem = is.storage->load_secret(storage_keys::account_key);
    if (!pem) return std::nullopt;
    try {
        return PrivateKey::from_pem(*pem);
    } catch (const Error& e) {
        throw Error("account key " + quoted(where) + ": " + e.what());
    }
}

PrivateKey load_account_key(const EngineContext& ctx, const IssuerState& is) {
    const std::string& spec = is.config->account_key;
    if (auto type = parse_key_type(spec)) {
        std::lock_guard<std::mutex> lk(account_key_mutex);
        std::string where = is.storage->locate(storage_keys::account_key);
        if (auto key = stored_account_key(is, where)) return std::move(*key);
        std::unique_ptr<Lease> lease;
        auto deadline = std::chrono::steady_clock::now() + account_key_wait;
        while (!(lease = is.storage->try_lease(account_key_lease, account_key_lease_ttl))) {
            if (std::chrono::steady_clock::now() >= deadline) {
                throw Error("account key " + quoted(where) +
                            ": another engine is making it and has not stored it after " +
                            std::to_string(account_key_wait.count()) + " s");
            }
            ctx.stop.pause(std::chrono::milliseconds(200));
            if (auto key = stored_account_key(is, where)) return std::move(*key);
        }
        // Stored by another engine between the first look and the lease.
        if (auto key = stored_account_key(is, where)) return std::move(*key);
        PrivateKey key = PrivateKey::generate(*type);
        is.storage->store(storage_keys::account_key, key.to_pem(), Access::secret);
        ctx.report(events::AccountKeyCreated{is.config->name, where});
        return key;
    }
    std::string pem = read_file(spec);
    try {
        return PrivateKey::from_pem(pem);
    } catch (const Error& e) {
        throw Error("account key " + quoted(spec) + ": " + e.what());
    }
}

void write_account_record(IssuerState& is) {
    Json j = Json::object();
    j.set("url", is.session->account_url());
    Json contacts = Json::array();
    for (const std::string& c : is.config->contacts) contacts.push(Json::string(c));
    j.set("contact", contacts);
    j.set("thumbprint", is.session->account_key().thumbprint());
    j.set("directory", is.config->directory_url);
    is.storage->store(storage_keys::account_json, j.dump_pretty() + "\n", Access::shared);
}

}  // namespace

AcmeSession& issuer_session(const EngineContext& ctx, IssuerState& is) {
    std::lock_guard<std::mutex> lk(is.mutex);
    if (!is.session) {
        is.session = std::make_unique<AcmeSession>(
            is.config->directory_url, load_account_key(ctx, is), is.http_options.user_agent);
    }
    return *is.session;
}

void ensure_account(const EngineContext& ctx, IssuerState& is, AcmeClient& client) {
    std::lock_guard<std::mutex> lk(is.mutex);
    bool registered = false;
    if (is.session->account_url().empty()) {
        AccountSettings settings;
        settings.contacts = is.config->contacts;
        settings.accept_terms = is.config->accept_terms;
        if (!is.config->eab_kid.empty()) {
            settings.eab = ExternalAccountBinding{is.config->eab_kid, is.config->eab_mac_key,
                                                  is.config->eab_alg};
        }
        if (!settings.eab && client.directory().external_account_required) {
            throw Error("issuer " + quoted(is.config->name) +
                        " requires an external account binding: set external_account_key");
        }
        try {
            client.ensure_account(settings);
        } catch (const CaError& e) {
            // Say that it is the account, not the order, that the CA
            // refused: a wrong EAB kid or key shows up here.
            std::string what = "account registration failed";
            if (settings.eab) {
                what += " (external account binding, kid " + quoted(settings.eab->kid) + ")";
            }
            throw CaError(what + ": ", e.problem, e.retry_after);
        }
        registered = true;
        ctx.report(events::AccountRegistered{is.config->name, is.session->account_url()});
    }
    if (registered || !is.account_json_checked) {
        if (registered || !is.storage->load(storage_keys::account_json)) write_account_record(is);
        is.account_json_checked = true;
    }
}

void forget_account(const EngineContext& ctx, IssuerState& is, const std::string& why) {
    std::lock_guard<std::mutex> lk(is.mutex);
    ctx.report(events::AccountLost{is.config->name, why});
    is.session->set_account_url("");
    is.account_json_checked = false;
}

}  // namespace acme
