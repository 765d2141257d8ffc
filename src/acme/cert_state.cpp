// What the storage says about a certificate at start-up, and how the outcome
// of an order is recorded.
#include "cert_state.h"

#include <algorithm>

#include "error.h"
#include "sealed_value.h"
#include "text.h"

namespace acme {

namespace {

// Never reschedule a success sooner than this, whatever the CA's validity
// says: a broken notAfter must not turn into a busy loop of orders.
constexpr std::time_t min_reschedule = 5;
// A stored next attempt further off than the longest backoff (6 h plus
// jitter) comes from a clock that jumped back or a damaged record.
constexpr std::time_t max_backoff = 8 * 3600;
// A storage that could not be reached at start-up is looked at again after this.
constexpr std::time_t storage_recheck = 30;
// A key that does not open with the configured encrypt_key_file is looked
// at again after this (the operator fixes the key and reloads).
constexpr std::time_t sealed_recheck = 300;

std::string order_key(const CertState& c) { return c.basename + storage_keys::order_suffix; }

}  // namespace

namespace {

void inspect(const EngineContext& ctx, CertState& c) {
    std::time_t now = ctx.now();
    c.current.reset();
    c.ari_window.reset();
    Storage& storage = c.storage();
    std::string reason;
    std::string saved_serial;
    std::time_t saved_renewal_at = 0;
    std::optional<Window> saved_ari;
    std::time_t saved_next_attempt = 0;
    const std::string record_key = c.basename + storage_keys::json_suffix;
    try {
        if (auto meta = storage.load(record_key)) {
            CertRecord r = parse_cert_record(*meta);
            // Keep counting failures across restarts, so backoff grows, and
            // keep away from challenge types that failed.
            c.failures = r.failures;
            c.challenges = r.challenge_failures;
            // The CA's Retry-After binds a new engine too.
            c.retry_after_until = r.retry_after_until.value_or(0);
            // Rewrites of the .json before the next order keep it.
            c.profile = r.profile;
            saved_serial = r.serial.value_or("");
            saved_renewal_at = r.renewal_at.value_or(0);
            saved_ari = r.ari_window;
            c.last_error = r.last_error;
            saved_next_attempt = r.next_attempt.value_or(0);
        }
    } catch (const StorageUnavailable&) {
        throw;
    } catch (const std::exception& e) {
        // An unreadable record only loses that history, but say so: the
        // failure count and the CA's Retry-After are in it.
        ctx.report(events::StorageFailed{
            "ignoring the record " + quoted(storage.locate(record_key)) + ": " + e.what(), true});
    }
    // The item being parsed, for the reason (load() names its file itself).
    std::string parsing;
    try {
        const std::string crt_key = c.basename + storage_keys::cert_suffix;
        const std::string key_key = c.basename + storage_keys::key_suffix;
        auto crt = storage.load(crt_key);
        auto key = storage.load_secret(key_key);
        if (!crt || !key) {
            reason = "missing";
        } else {
            parsing = crt_key;
            // Every certificate of the chain must parse: a chain cut short
            // (a damaged file) is served without its intermediates, which
            // clients refuse, so it is not current.
            X509Ptr leaf;
            CertificateInfo info = inspect_chain(*crt, &leaf);
            parsing = key_key;
            PrivateKey pkey = PrivateKey::from_pem(*key);
            parsing.clear();
            if (!certificate_matches_key(leaf.get(), pkey)) {
                reason = "key mismatch";
            } else if (identifier_set(info.names) != identifier_set(c.config->identifiers)) {
                reason = "names changed";
            } else if (info.not_after <= now) {
                reason = "expired";
            } else {
                c.current = info;
            }
            // A crash after storing the certificate but before removing
            // its saved order: that order is done.
            if (auto saved = load_saved_order(ctx, c);
                saved && saved->key && saved->key->to_pem() == pkey.to_pem()) {
                discard_saved_order(ctx, c);
            }
        }
    } catch (const StorageUnavailable&) {
        throw;
    } catch (const SealError&) {
        throw;
    } catch (const std::exception& e) {
        reason = "unreadable: " + (parsing.empty() ? "" : quoted(storage.locate(parsing)) + ": ") +
                 e.what();
    }

    // A start or reload keeps the backoff of a failing certificate (each
    // attempt may count against the CA's limits on failed validations),
    // and the CA's Retry-After. A names or key type change is another
    // certificate id, with a record of its own, so it is ordered at once.
    std::time_t backoff_until =
        c.failures > 0 ? std::min(saved_next_attempt, now + max_backoff) : 0;
    c.retry_at = std::max({now, c.retry_after_until, backoff_until});
    if (c.current) {
        Window w = renewal_window(c.current->not_before, c.current->not_after, c.renew_before);
        // The same random pick as before a restart, if it still fits.
        bool keep = saved_serial == c.current->serial_hex && saved_renewal_at >= w.start &&
                    saved_renewal_at <= w.end;
        c.ratio_pick = keep ? saved_renewal_at : pick_time(w, ctx.random.next());
        c.renewal_at = c.ratio_pick;
        // The CA's last known window, until ARI is asked again.
        if (saved_serial == c.current->serial_hex && saved_ari) {
            c.ari_window = saved_ari;
            if (!keep) c.renewal_at = renewal_time(c.ratio_pick, saved_ari, ctx.random.next());
        }
        // Ask the CA's renewal information (a revocation may have moved
        // it) at a random time within one recheck interval, so that a
        // start with thousands of certificates sends no burst; the
        // issuer's pacer spreads them further. A CA without ARI clears it.
        std::time_t spread =
            ari_recheck_delay(std::nullopt, c.current->not_after - c.current->not_before).count();
        c.ari_check_at = c.current->ari_cert_id.empty()
                             ? 0
                             : now + static_cast<std::time_t>(ctx.random.next() %
                                                              static_cast<std::uint64_t>(spread));
        ctx.report(events::CertificateLoaded{c.ref(), c.current->not_after, c.renewal_at});
    } else {
        events::OrderNeeded e{c.ref(), reason, 0, 0};
        if (c.retry_at > now) {
            e.not_before = c.retry_at;
            // Which of the two set the time, for the log line.
            if (c.retry_at != c.retry_after_until) e.failures = c.failures;
        }
        ctx.report(e);
    }
    c.missing_reason = reason;
    c.due = c.next_due();
    report_state(ctx, c);
}

}  // namespace

void report_state(const EngineContext& ctx, const CertState& c) {
    events::CertificateState e;
    e.cert = c.ref();
    e.issuer = c.issuer->config->name;
    e.key_type = key_type_name(c.config->key_type);
    if (c.current) {
        e.has_cert = true;
        e.not_before = c.current->not_before;
        e.not_after = c.current->not_after;
        e.serial = c.current->serial_hex;
        e.sha256 = c.current->sha256_hex;
    }
    if (c.ari_window) {
        e.has_ari = true;
        e.ari_start = c.ari_window->start;
        e.ari_end = c.ari_window->end;
    }
    e.failures = c.failures;
    if (c.renew_requested) {
        e.renew_reason = "requested";
    } else if (c.failures > 0) {
        e.renew_reason = "retry";
    } else if (!c.current) {
        e.renew_reason = c.missing_reason.empty() ? "missing" : c.missing_reason;
    } else if (c.ari_window && c.renewal_at != c.ratio_pick) {
        e.renew_reason = "ari";
    } else {
        e.renew_reason = "lifetime";
    }
    e.renew_at = c.renew_requested ? ctx.now() : c.next_due();
    if (!c.current || c.failures > 0) e.next_attempt = c.retry_at;
    if (c.last_error) {
        e.has_error = true;
        e.error_type = c.last_error->type;
        e.error_detail = c.last_error->detail;
        e.error_at = c.last_error->at;
    }
    e.retry_after_until = c.retry_after_until;
    ctx.report(e);
}

void inspect_stored(const EngineContext& ctx, CertState& c) {
    try {
        inspect(ctx, c);
        c.inspected = true;
        // A shared store may just have filled this node's cache with a
        // certificate its workers have not read (a node joining a cluster
        // whose certificates exist): they look at the files again.
        if (c.current && c.storage().shared()) ctx.board.certificate_updated(c.basename);
    } catch (const StorageUnavailable& e) {
        // Nothing is known: neither order nor forget the record's backoff,
        // look again soon.
        c.inspected = false;
        c.due = ctx.now() + storage_recheck;
        ctx.report(events::StorageFailed{"certificate \"" + c.name + "\": " + e.what(), false});
    } catch (const SealError& e) {
        // Most likely another node's key, or a changed encrypt_key_file:
        // every key then fails to open. Ordering anew would replace the
        // cluster's good keys with ones the other nodes cannot open.
        c.inspected = false;
        c.due = ctx.now() + sealed_recheck;
        ctx.report(events::StorageFailed{"certificate \"" + c.name + "\": " + e.what() +
                                             "; not renewed until it opens (or is removed)",
                                         false});
    }
}

void write_record(const EngineContext& ctx, const CertState& c, std::time_t now) {
    CertRecord r;
    for (const Identifier& id : c.config->identifiers) r.names.push_back(id.value);
    r.key_type = key_type_name(c.config->key_type);
    r.issuer = c.issuer->config->name;
    r.profile = c.profile;
    if (c.current) {
        r.not_before = c.current->not_before;
        r.not_after = c.current->not_after;
        r.serial = c.current->serial_hex;
        r.renewal_at = c.renewal_at;
        // The CA's window is of this certificate: inspect_stored() trusts it
        // only for the same serial.
        r.ari_window = c.ari_window;
    }
    // Only a failing certificate waits for a retry; otherwise renewal_at says when.
    if (c.failures > 0) r.next_attempt = c.retry_at;
    // A Retry-After that has passed no longer binds anyone.
    if (c.retry_after_until > now) r.retry_after_until = c.retry_after_until;
    r.failures = c.failures;
    r.challenge_failures = c.challenges;
    r.last_error = c.last_error;
    r.updated_at = now;
    try {
        c.storage().store(c.basename + storage_keys::json_suffix, format_cert_record(r),
                          Access::shared);
    } catch (const std::exception& e) {
        ctx.report(events::StorageFailed{e.what(), false});
    }
    report_state(ctx, c);
}

void record_issued(const EngineContext& ctx, CertState& c, std::chrono::duration<double> took) {
    std::time_t now = ctx.now();
    c.renew_requested = false;
    c.failures = 0;
    c.retry_after_until = 0;
    c.last_error.reset();
    c.ari_window.reset();
    std::time_t lifetime = c.current->not_after - c.current->not_before;
    // A fresh certificate's window is far off: look at it later.
    auto dir = c.issuer->session ? c.issuer->session->directory() : std::nullopt;
    bool ari = dir && !dir->renewal_info.empty() && !c.current->ari_cert_id.empty();
    c.ari_check_at = ari ? now + ari_recheck_delay(std::nullopt, lifetime).count() : 0;
    // A certificate just issued that is already due by this host's clock:
    // the clock is ahead of the CA's (it jumped, or is wrong). Its dates
    // would have every renewal due at once, one every few seconds for ever;
    // counted from now, the renewal comes after the share of the lifetime
    // it was meant to.
    std::time_t ahead = 0;
    if (c.ratio_pick <= now) {
        ahead = std::max<std::time_t>(1, now - c.current->not_before);
        c.ratio_pick = now + std::max<std::time_t>(0, c.ratio_pick - c.current->not_before);
    }
    c.renewal_at = std::max(c.ratio_pick, now + min_reschedule);
    ctx.report(events::Issued{c.ref(), c.issuer->config->name, c.current->not_after, c.renewal_at,
                              took.count(), ahead});
    write_record(ctx, c, now);
    // Workers reload on this, so everything is stored by now.
    ctx.board.certificate_updated(c.basename);
}

void postpone_order(const EngineContext& ctx, CertState& c, const std::string& why) {
    std::time_t at = ctx.now() + static_cast<std::time_t>(ctx.config.postpone_delay.count());
    c.renew_requested = false;
    if (!c.current || c.failures > 0) {
        c.retry_at = at;
    } else {
        c.renewal_at = at;
    }
    ctx.report(events::OrderPostponed{c.ref(), why, at});
    report_state(ctx, c);
}

void record_failure(const EngineContext& ctx, CertState& c, LastError failure,
                    std::optional<std::chrono::seconds> retry_after) {
    std::time_t now = ctx.now();
    c.renew_requested = false;
    ++c.failures;
    failure.at = now;
    std::time_t lifetime = c.current ? c.current->not_after - c.current->not_before : 0;
    std::chrono::seconds delay = retry_delay(c.failures, classify_problem(failure.type), lifetime,
                                             retry_after, ctx.random.next());
    c.retry_at = now + static_cast<std::time_t>(delay.count());
    c.retry_after_until = retry_after ? now + static_cast<std::time_t>(retry_after->count()) : 0;
    c.last_error = failure;
    ctx.report(
        events::Failed{c.ref(), c.issuer->config->name, failure.type, failure.detail, c.retry_at});
    if (c.current && expiry_near(c.current->not_before, c.current->not_after, now)) {
        ctx.report(events::Expiring{c.ref(), c.current->not_after, c.current->not_after <= now});
    }
    write_record(ctx, c, now);
}

std::optional<SavedOrder> load_saved_order(const EngineContext& ctx, const CertState& c) {
    try {
        auto text = c.storage().load_secret(order_key(c));
        if (!text) return std::nullopt;
        return parse_saved_order(*text);
    } catch (const StorageUnavailable&) {
        // Not damaged, only out of reach: it may hold the key of a
        // certificate the CA has issued.
        throw;
    } catch (const std::exception& e) {
        // Never let a damaged record block renewals: order anew.
        ctx.report(events::SavedOrderIgnored{c.storage().locate(order_key(c)), e.what()});
        discard_saved_order(ctx, c);
        return std::nullopt;
    }
}

void save_order(const EngineContext& ctx, const CertState& c, const std::string& url,
                const PrivateKey* key) {
    SavedOrder saved;
    saved.url = url;
    if (key != nullptr) saved.key = *key;
    saved.updated_at = ctx.now();
    // A secret: it holds the new private key once the CSR is sent. Only a
    // hint: one lost or torn in a crash costs a new order (load_saved_order
    // discards what it cannot parse).
    c.storage().store_hint(order_key(c), format_saved_order(saved), Access::secret);
}

void discard_saved_order(const EngineContext& ctx, const CertState& c) {
    try {
        c.storage().remove(order_key(c));
    } catch (const std::exception& e) {
        ctx.report(events::StorageFailed{e.what(), false});
    }
}

}  // namespace acme
