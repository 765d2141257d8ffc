// One order from newOrder (or a saved order) to the stored certificate.
#include "order_runner.h"

#include <algorithm>

#include "challenge.h"
#include "text.h"

namespace acme {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

// How long one order may wait for the CA to validate or to issue.
constexpr seconds poll_limit{300};
// How often a waiting order renews its lease (whose time to live is ten
// times this, see scheduler.cpp).
constexpr seconds lease_renewal{60};

std::string authz_name(const Authorization& a) {
    return a.wildcard ? "*." + a.identifier.value : a.identifier.value;
}

// Delays between polls: the CA's Retry-After when it sends one (within
// reason), else a quick start that backs off, since Pebble and most CAs
// validate within a second or two.
class PollDelay {
public:
    // The first look is immediate when the answer is usually there already
    // (an order whose authorizations are all valid is ready), and after
    // first_wait when the CA has work to do first (validating, issuing):
    // at once it would find that still pending, a request for nothing.
    explicit PollDelay(milliseconds first = milliseconds(0)) : delay_(first) {}

    milliseconds next(const std::optional<seconds>& retry_after) {
        if (retry_after) {
            return std::chrono::duration_cast<milliseconds>(
                std::clamp(*retry_after, seconds(1), seconds(60)));
        }
        milliseconds d = delay_;
        delay_ = d == milliseconds(0) ? first_wait : std::min(d * 2, milliseconds(2000));
        return d;
    }

    static constexpr milliseconds first_wait{25};

private:
    milliseconds delay_;
};

// The answers an order presented, cleaned up however the order ends.
// Answers are queued, then published: one by one, or all of a solver's
// together when it presents them so (dns-01's shared update messages).
class PresentedAnswers {
public:
    PresentedAnswers() = default;
    ~PresentedAnswers() {
        for (const Published& p : published_) {
            if (!p.solver->presents_together()) {
                const Solver::Answer& a = p.answers.front();
                p.solver->cleanup(a.id, a.challenge, a.key_authorization);
            } else {
                p.solver->cleanup_together(p.answers);
            }
        }
    }
    PresentedAnswers(const PresentedAnswers&) = delete;
    PresentedAnswers& operator=(const PresentedAnswers&) = delete;

    // `name` for the error message.
    void add(Solver& solver, const Identifier& id, const Challenge& challenge,
             std::string key_authorization, std::string name) {
        queued_.push_back(
            {&solver, {id, challenge, std::move(key_authorization)}, std::move(name)});
    }

    // The answer must be in place before the CA is told to look.
    void publish() {
        std::vector<Queued> queued = std::move(queued_);
        queued_.clear();
        for (Queued& q : queued) {
            if (q.solver == nullptr || q.solver->presents_together()) continue;
            try {
                q.solver->present(q.answer.id, q.answer.challenge, q.answer.key_authorization);
            } catch (const Error& e) {
                throw cannot_publish(q.answer.challenge.type, quoted(q.name), e);
            }
            published_.push_back({q.solver, {std::move(q.answer)}});
        }
        for (std::size_t i = 0; i < queued.size(); i++) {
            Solver* solver = queued[i].solver;
            if (solver == nullptr || !solver->presents_together()) continue;
            Published group{solver, {}};
            std::string names;
            for (std::size_t k = i; k < queued.size(); k++) {
                if (queued[k].solver != solver) continue;
                names += (names.empty() ? "" : ", ") + quoted(queued[k].name);
                group.answers.push_back(std::move(queued[k].answer));
                queued[k].solver = nullptr;
            }
            try {
                solver->present_together(group.answers);
            } catch (const Error& e) {
                throw cannot_publish(group.answers.front().challenge.type, names, e);
            }
            published_.push_back(std::move(group));
        }
    }

    // Once all are published: each one's wait overlaps the others'.
    void wait_visible() {
        for (const Published& p : published_) {
            for (const Solver::Answer& a : p.answers) {
                p.solver->wait_visible(a.id, a.challenge, a.key_authorization);
            }
        }
    }

private:
    static Error cannot_publish(const std::string& type, const std::string& names, const Error& e) {
        return Error("cannot publish the " + type + " challenge for " + names + ": " + e.what());
    }

    struct Queued {
        Solver* solver;  // null once taken into a group
        Solver::Answer answer;
        std::string name;
    };
    struct Published {
        Solver* solver;
        std::vector<Solver::Answer> answers;
    };
    std::vector<Queued> queued_;
    std::vector<Published> published_;
};

OrderFailure order_failure(const Order& order, const std::string& what) {
    if (order.error) {
        return OrderFailure(what + " failed: " + order.error->describe(), order.error->type);
    }
    return OrderFailure(what + " became invalid", "");
}

// `type` names the challenge that was tried, when there was one.
OrderFailure authorization_failure(const Authorization& a, const std::string& name,
                                   const std::string& type = "") {
    std::string what = "authorization for " + quoted(name);
    if (!type.empty()) what += " by " + type;
    if (auto problem = a.first_error()) {
        return OrderFailure(what + " failed: " + problem->describe(), problem->type);
    }
    return OrderFailure(what + " is " + quoted(a.status), "");
}

std::string top_issuer(const std::string& chain) {
    std::vector<std::string> certs = split_pem_chain(chain);
    return inspect_certificate(certs.back()).issuer_cn;
}

}  // namespace

void attempt_order(const EngineContext& ctx, CertState& c, HttpClient& http) {
    if (std::string why;
        ctx.hook && !ctx.hook->before_order(c.ref(), c.issuer->config->name, why)) {
        postpone_order(ctx, c, why);
        return;
    }
    auto started = SteadyClock::now();
    std::optional<LastError> failure;
    std::optional<seconds> retry_after;
    try {
        for (int tries = 1;; ++tries) {
            try {
                OrderRunner(ctx, c, http).run();
                break;
            } catch (const CaError& e) {
                // The CA lost or dropped the account (a test CA restarted,
                // say): register again, once.
                if (tries > 1 || !e.problem.is("accountDoesNotExist")) throw;
                forget_account(ctx, *c.issuer, e.what());
            }
        }
    } catch (const CaError& e) {
        failure = LastError{e.problem.type, e.what(), 0};
        retry_after = e.retry_after;
    } catch (const OrderFailure& e) {
        failure = LastError{e.type, e.what(), 0};
    } catch (const std::exception& e) {
        failure = LastError{"", e.what(), 0};
    }
    if (failure) {
        record_failure(ctx, c, std::move(*failure), retry_after);
    } else {
        record_issued(ctx, c, SteadyClock::now() - started);
    }
}

// An order stops at its first failed name, so each name may need its own
// fallback: at most once per name and further type.
void OrderRunner::run() {
    std::size_t fallbacks =
        c_.config->identifiers.size() * (c_.issuer->config->challenges.size() - 1) + 1;
    for (;;) {
        try {
            run_order();
            return;
        } catch (const OrderFailure& e) {
            if (!e.other_challenge || fallbacks <= 1) throw;
            --fallbacks;
            ctx_.report(events::ChallengeFallback{c_.ref(), e.what()});
        }
    }
}

// One order: a saved one resumed, or a new one.
void OrderRunner::run_order() {
    ctx_.stop.check();
    AcmeSession& session = issuer_session(ctx_, *c_.issuer);
    AcmeClient client(http_, session);
    client.set_pause([this](milliseconds d) { ctx_.stop.pause(d); });
    const Directory& dir = client.directory();
    ctx_.stop.check();
    ensure_account(ctx_, *c_.issuer, client);
    ctx_.stop.check();

    Order order;
    std::optional<PrivateKey> key;
    bool resumed = false;
    if (std::optional<SavedOrder> saved = load_saved_order(ctx_, c_)) {
        resumed = resume_order(client, *saved, order);
        if (resumed) key = std::move(saved->key);
    }
    if (order.url.empty()) {
        order = new_order(client, dir);
        // From here on a crash resumes this order instead of making another.
        save_order(ctx_, c_, order.url, nullptr);
    }
    try {
        complete_order(client, session, order, key);
    } catch (const OrderFailure&) {
        // The CA declared the order (or one of its authorizations) invalid:
        // there is nothing left to resume.
        discard_saved_order(ctx_, c_);
        throw;
    } catch (const std::exception&) {
        // A resumed order gets one try: one stuck at the CA must not hold
        // up renewal until it expires there.
        if (resumed) discard_saved_order(ctx_, c_);
        throw;
    }
}

// Picks up an order an earlier engine left in progress. False (and the
// record removed) when it cannot be used, so a new order is made; a CA that
// does not answer leaves the record for the next attempt.
bool OrderRunner::resume_order(AcmeClient& client, const SavedOrder& saved, Order& order) {
    try {
        order = client.get_order(saved.url);
        if (order.url.empty()) order.url = saved.url;
    } catch (const CaError& e) {
        if (e.problem.status >= 500) throw;
        ctx_.report(events::SavedOrderDropped{c_.ref(), saved.url, "", e.what()});
        discard_saved_order(ctx_, c_);
        order = Order{};
        return false;
    }
    // Past finalize the certificate is of use only with the saved key.
    bool usable = order.status == "pending" || order.status == "ready" ||
                  ((order.status == "processing" || order.status == "valid") && saved.key);
    if (!usable) {
        ctx_.report(events::SavedOrderDropped{c_.ref(), saved.url, order.status, ""});
        discard_saved_order(ctx_, c_);
        order = Order{};
        return false;
    }
    ctx_.report(events::OrderResumed{c_.ref(), saved.url, order.status});
    return true;
}

// newOrder, with "replaces" for a renewal when the CA has ARI; a CA that
// refuses the replacement gets the order without it.
Order OrderRunner::new_order(AcmeClient& client, const Directory& dir) {
    const std::vector<Identifier>& ids = c_.config->identifiers;
    OrderOptions options;
    options.profile = order_profile(dir);
    c_.profile = options.profile;
    if (c_.current && !dir.renewal_info.empty()) options.replaces = c_.current->ari_cert_id;
    ctx_.report(events::Ordering{c_.ref(), c_.issuer->config->name, options.replaces});
    if (options.replaces.empty()) return client.new_order(ids, options);
    std::string refused;
    Order order = client.new_order_replacing(ids, options, refused);
    // Pebble, for one, refuses serials whose DER form has a leading zero
    // (serverInternal: it cannot find the certificate).
    if (!refused.empty()) ctx_.report(events::ReplacementRefused{c_.ref(), refused});
    return order;
}

// Validation, finalize, download and storage of one order.
void OrderRunner::complete_order(AcmeClient& client, AcmeSession& session, Order order,
                                 std::optional<PrivateKey> key) {
    const std::vector<Identifier>& ids = c_.config->identifiers;
    ctx_.stop.check();
    if (order.status == "pending") {
        authorize(client, order, session.account_key());
        // Every authorization is valid, so the order is ready (RFC 8555,
        // 7.1.6): finalize without looking at it first, as certbot does.
        order.status = "ready";
    }
    if (order.status == "ready") {
        // A fresh key for every certificate: renewal rotates it. It is
        // saved before the CSR goes out, so that a crash after finalize can
        // still use the certificate.
        key = PrivateKey::generate(c_.config->key_type);
        save_order(ctx_, c_, order.url, &*key);
        order =
            finalize(client, order, make_csr_der(*key, ids, c_.issuer->config->common_name_in_csr));
        ctx_.stop.check();
        order = wait_order(client, order, {"ready", "processing"});
    } else if (order.status == "processing") {
        order = wait_order(client, order, {"processing"});
    }
    if (order.status == "invalid") {
        discard_saved_order(ctx_, c_);
        throw order_failure(order, "order for " + quoted(c_.name));
    }
    if (order.status != "valid" || order.certificate.empty() || !key) {
        throw Error("order for " + quoted(c_.name) + " is " + quoted(order.status) +
                    " instead of \"valid\"");
    }

    std::vector<std::string> alternates;
    std::string chain = client.download_certificate(order.certificate, &alternates);
    ctx_.stop.check();
    if (!c_.issuer->config->preferred_chain.empty()) {
        chain = preferred_chain(client, std::move(chain), alternates);
    }
    X509Ptr leaf;
    CertificateInfo info = inspect_chain(chain, &leaf);
    if (!certificate_matches_key(leaf.get(), *key)) {
        discard_saved_order(ctx_, c_);
        throw Error("the certificate issued for " + quoted(c_.name) + " does not match its key");
    }
    if (identifier_set(info.names) != identifier_set(ids)) {
        ctx_.report(events::NamesMismatch{c_.ref()});
    }

    // The key goes first: a reader that finds a new .crt must find its key.
    c_.storage().store_all({{c_.basename + storage_keys::key_suffix, key->to_pem(), Access::secret},
                            {c_.basename + storage_keys::cert_suffix, chain, Access::shared}});
    discard_saved_order(ctx_, c_);
    c_.current = info;
    c_.ratio_pick = pick_time(renewal_window(info.not_before, info.not_after, c_.renew_before),
                              ctx_.random.next());
}

// Publishes an answer for every pending authorization, then asks the CA to
// validate them all, then waits: names are validated in parallel.
void OrderRunner::authorize(AcmeClient& client, const Order& order, const PrivateKey& account_key) {
    struct Pending {
        std::string url;
        std::string name;
        Challenge challenge;
        bool alternatives = false;  // the CA offered another configured type
    };
    PresentedAnswers presented;
    std::vector<Pending> pending;
    const std::vector<std::string>& preferred = c_.issuer->config->challenges;
    const Solvers& solvers = c_.issuer->solvers;
    for (const std::string& url : order.authorizations) {
        Authorization a = client.get_authorization(url);
        ctx_.stop.check();
        std::string name = authz_name(a);
        if (a.status == "valid") continue;
        if (a.status != "pending") throw authorization_failure(a, name);

        // Configured types the CA offers and this issuer can answer.
        std::vector<std::string> offered;
        for (const Challenge& ch : a.challenges) {
            if (solvers.find(ch.type) != nullptr &&
                std::find(preferred.begin(), preferred.end(), ch.type) != preferred.end()) {
                offered.push_back(ch.type);
            }
        }
        std::optional<std::string> type = c_.challenges.choose(preferred, offered, name);
        if (!type) {
            std::string types;
            for (const Challenge& ch : a.challenges) types += (types.empty() ? "" : ", ") + ch.type;
            throw Error("the CA offers no configured challenge type for " + quoted(name) +
                        " (it offers " + (types.empty() ? "none" : types) + ")");
        }
        const Challenge* chosen = a.find(*type);
        presented.add(*solvers.find(*type), a.identifier, *chosen,
                      key_authorization(chosen->token, account_key), name);
        pending.push_back({url, name, *chosen, offered.size() > 1});
    }

    presented.publish();
    presented.wait_visible();
    for (const Pending& p : pending) {
        if (p.challenge.status == "pending") client.respond(p.challenge);
        ctx_.stop.check();
    }

    auto deadline = SteadyClock::now() + poll_limit;
    bool first = true;
    for (const Pending& p : pending) {
        // The CA validates after the responses: the first look waits; once
        // one authorization is valid the others usually are too.
        PollDelay delay(first ? PollDelay::first_wait : milliseconds(0));
        first = false;
        std::optional<seconds> retry_after;
        for (;;) {
            ctx_.stop.pause(delay.next(retry_after));
            keep_lease();
            Authorization a = client.get_authorization(p.url);
            if (a.status == "valid") break;
            if (a.status != "pending" && a.status != "processing") {
                c_.challenges.failed(p.name, p.challenge.type);
                OrderFailure failure = authorization_failure(a, p.name, p.challenge.type);
                failure.other_challenge = p.alternatives;
                throw failure;
            }
            if (SteadyClock::now() >= deadline) {
                throw Error("authorization for " + quoted(p.name) + " is still " +
                            quoted(a.status) + " after " + std::to_string(poll_limit.count()) +
                            " s");
            }
            retry_after = a.retry_after;
        }
        c_.challenges.succeeded(p.name, p.challenge.type);
        ctx_.report(events::AuthorizationValid{c_.ref(), p.name, p.challenge.type});
    }
}

// While an order waits for the CA, the certificate's lease is renewed now
// and then; an order whose lease was lost stops, as another engine may be
// ordering the same certificate.
void OrderRunner::keep_lease() {
    if (c_.lease == nullptr || SteadyClock::now() - lease_renewed_ < lease_renewal) return;
    if (!c_.lease->renew()) {
        throw Error("the lease on certificate " + quoted(c_.name) +
                    " was lost: another engine may be ordering it");
    }
    lease_renewed_ = SteadyClock::now();
}

// Polls the order while its status is one of `waiting`.
Order OrderRunner::wait_order(AcmeClient& client, Order order,
                              std::initializer_list<const char*> waiting) {
    auto deadline = SteadyClock::now() + poll_limit;
    // A pending order is looked at once (its authorizations were just seen
    // valid); one that is processing has a certificate to be made first.
    PollDelay delay(order.status == "processing" ? PollDelay::first_wait : milliseconds(0));
    auto is_waiting = [&](const std::string& status) {
        return std::any_of(waiting.begin(), waiting.end(),
                           [&](const char* w) { return status == w; });
    };
    while (is_waiting(order.status)) {
        if (SteadyClock::now() >= deadline) {
            throw Error("order " + quoted(order.url) + " is still " + quoted(order.status) +
                        " after " + std::to_string(poll_limit.count()) + " s");
        }
        ctx_.stop.pause(delay.next(order.retry_after));
        keep_lease();
        std::string url = order.url;
        order = client.get_order(url);
        if (order.url.empty()) order.url = url;
    }
    return order;
}

// Finalizes an order taken to be ready. A CA that has not yet seen its
// authorizations' validity answers orderNotReady: then the order is
// polled until it leaves "pending", and finalized if it became ready.
Order OrderRunner::finalize(AcmeClient& client, Order order, const std::string& csr_der) {
    try {
        return client.finalize(order, csr_der);
    } catch (const CaError& e) {
        if (!e.problem.is("orderNotReady")) throw;
    }
    ctx_.stop.check();
    order.status = "pending";
    order = wait_order(client, order, {"pending"});
    return order.status == "ready" ? client.finalize(order, csr_der) : order;
}

// The profile to put in newOrder, checked against the directory's
// meta.profiles; "" to let the CA choose.
std::string OrderRunner::order_profile(const Directory& directory) {
    const IssuerConfig& ic = *c_.issuer->config;
    const std::string& wanted = !c_.config->profile.empty() ? c_.config->profile : ic.profile;
    if (wanted.empty()) return "";
    const auto& offered = directory.profiles;
    if (std::find(offered.begin(), offered.end(), wanted) != offered.end()) return wanted;

    std::string list;
    for (const std::string& p : offered) list += (list.empty() ? "" : ", ") + p;
    std::string why = "profile " + quoted(wanted) + " is not offered by issuer " + quoted(ic.name) +
                      " (" + (list.empty() ? "it offers no profiles" : "it offers " + list) + ")";
    if (ic.profile_required) throw Error(why + " and is required, not ordering");
    ctx_.report(events::ProfileNotOffered{c_.ref(), why});
    return "";
}

// Among the default chain and the alternates the CA offers, the first whose
// topmost certificate was issued by the preferred name; the default chain
// when none is.
std::string OrderRunner::preferred_chain(AcmeClient& client, std::string chain,
                                         const std::vector<std::string>& alternates) {
    const std::string& wanted = c_.issuer->config->preferred_chain;
    std::vector<std::string> seen{top_issuer(chain)};
    if (seen.front() == wanted) return chain;
    for (const std::string& url : alternates) {
        std::string alternate = client.download_certificate(url);
        ctx_.stop.check();
        seen.push_back(top_issuer(alternate));
        if (seen.back() == wanted) {
            ctx_.report(events::AlternateChain{c_.ref(), wanted});
            return alternate;
        }
    }
    ctx_.report(events::NoPreferredChain{c_.ref(), wanted, seen});
    return chain;
}

}  // namespace acme
