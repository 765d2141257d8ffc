// Layout and locking of the shared-memory area between the engine (helper
// process) and nginx workers: http-01 and tls-alpn-01 answers and
// certificate generations.
#include "shared_state.h"

#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <unordered_map>

#include "error.h"
#include "shm_area.h"

namespace acme {

// Only lock-free atomics work between processes: a lock-based fallback
// would keep its mutex outside the shared memory.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "need lock-free 32-bit atomics");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "need lock-free 64-bit atomics");

namespace {

// The last updates, by generation: a worker that saw generation G reads
// the entries after G instead of looking up every certificate it serves.
constexpr std::size_t journal_size = 1024;

struct JournalEntry {
    std::uint64_t generation;  // global generation the update got
    std::uint64_t slot;        // index in the certificate table
};

struct ZoneHeader {
    std::uint32_t magic;
    std::uint32_t version;
    std::uint64_t size;
    // 0 when free, else the owner: its pid in the low 32 bits and its
    // start time in the high ones, so that a waiter can recover the lock
    // from a process that died holding it, even once its pid is reused.
    std::atomic<std::uint64_t> lock;
    std::uint32_t certificate_overflow;  // a certificate_updated() found no free slot
    std::atomic<std::uint64_t> global_generation;
    std::uint64_t challenge_slots;
    std::uint64_t certificate_slots;
    std::uint64_t tls_alpn_slots;
    std::uint64_t tls_alpn_sequence;  // last publication, orders answers for one name
    // Entries of generations up to this one may name moved slots (the
    // table was rebuilt): a reader that saw less compares everything.
    std::uint64_t journal_floor;
    JournalEntry journal[journal_size];
};

// The dead-owner unit test pokes the lock word at this offset.
static_assert(offsetof(ZoneHeader, lock) == 16, "lock word moved");

constexpr std::uint32_t magic_value = 0x41434d45;  // "ACME"
constexpr std::uint32_t layout_version = 4;

struct ChallengeSlot {
    std::uint32_t in_use;
    std::uint32_t token_len;
    std::uint32_t key_authorization_len;
    char token[SharedState::max_token];
    char key_authorization[SharedState::max_key_authorization];
};

struct TlsAlpnSlot {
    std::uint32_t in_use;
    std::uint32_t name_len;
    std::uint32_t identifier_len;  // 0: the identifier is the name itself (DNS)
    std::uint32_t reserved;
    std::uint64_t sequence;
    unsigned char digest[32];
    char name[SharedState::max_server_name];
    char identifier[SharedState::max_ip_identifier];
};

constexpr std::size_t digest_size = sizeof(TlsAlpnSlot::digest);

// Certificate ids are store basenames: a 253-character DNS name plus the
// hash suffix can exceed max_cert_id, so slots keep the full length and a
// hash of the whole id next to its (possibly cut) prefix. The table is a
// hash table with linear probing (first slot: id_hash modulo the slots),
// so a lookup among 10,000 certificates costs a few comparisons.
constexpr std::uint32_t slot_free = 0;      // never used: ends a probe
constexpr std::uint32_t slot_used = 1;      // holds a certificate
constexpr std::uint32_t slot_released = 2;  // freed: a probe goes on past it

struct CertificateSlot {
    std::uint32_t in_use;  // slot_free, slot_used or slot_released
    std::uint32_t id_len;
    std::uint64_t id_hash;
    std::uint64_t generation;
    char id[SharedState::max_cert_id];
};

constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

constexpr std::size_t header_size = align_up(sizeof(ZoneHeader), 64);
constexpr std::size_t min_slots = 8;

// Each table gets a third of the area after the header, 64-byte aligned.
std::size_t area_third(std::size_t size) {
    return size > header_size ? (size - header_size) / 3 / 64 * 64 : 0;
}

}  // namespace

// The private name the class declares for its header.
struct SharedState::Header : ZoneHeader {};

std::size_t SharedState::min_size() {
    std::size_t third =
        std::max({min_slots * sizeof(ChallengeSlot), min_slots * sizeof(TlsAlpnSlot),
                  min_slots * sizeof(CertificateSlot)});
    return header_size + 3 * align_up(third, 64);
}

std::size_t SharedState::challenge_slots(std::size_t size) {
    return area_third(size) / sizeof(ChallengeSlot);
}

std::size_t SharedState::tls_alpn_slots(std::size_t size) {
    return area_third(size) / sizeof(TlsAlpnSlot);
}

std::size_t SharedState::certificate_slots(std::size_t size) {
    return area_third(size) / sizeof(CertificateSlot);
}

std::size_t SharedState::size_for(std::size_t certificates) {
    // A third of the slots stay free: linear probing in a full table would
    // look at most of it for every lookup.
    std::size_t slots = std::max(certificates + certificates / 2, min_slots);
    std::size_t third = align_up(slots * sizeof(CertificateSlot), 64);
    return std::max(min_size(), header_size + 3 * third + 64);
}

SharedState::SharedState(void* base, std::size_t size) : base_(base), size_(size) {}

SharedState::Header* SharedState::header() const { return static_cast<Header*>(base_); }

namespace {

ChallengeSlot* challenge_table(void* base) {
    return reinterpret_cast<ChallengeSlot*>(static_cast<char*>(base) + header_size);
}

TlsAlpnSlot* tls_alpn_table(void* base, std::size_t size) {
    return reinterpret_cast<TlsAlpnSlot*>(static_cast<char*>(base) + header_size +
                                          area_third(size));
}

CertificateSlot* certificate_table(void* base, std::size_t size) {
    return reinterpret_cast<CertificateSlot*>(static_cast<char*>(base) + header_size +
                                              2 * area_third(size));
}

std::string_view slot_token(const ChallengeSlot& s) { return {s.token, s.token_len}; }

// Frees a slot for the next publication; the caller holds the lock.
void release(ChallengeSlot& s) {
    s.in_use = 0;
    s.token_len = 0;
    s.key_authorization_len = 0;
}

void release(TlsAlpnSlot& s) {
    s.in_use = 0;
    s.name_len = 0;
}

// An empty string_view may have no data() at all, and memcpy from a null
// pointer is undefined even for 0 bytes (UBSan reports it).
void copy_bytes(char* to, std::string_view from) {
    if (!from.empty()) std::memcpy(to, from.data(), from.size());
}

bool slot_has(const TlsAlpnSlot& s, std::string_view name, std::string_view digest) {
    return s.in_use && std::string_view(s.name, s.name_len) == name &&
           std::memcmp(s.digest, digest.data(), digest_size) == 0;
}

bool slot_has_id(const CertificateSlot& s, std::string_view id, std::uint64_t hash) {
    if (s.in_use != slot_used || s.id_len != id.size() || s.id_hash != hash) return false;
    std::size_t n = std::min(id.size(), SharedState::max_cert_id);
    return std::string_view(s.id, n) == id.substr(0, n);
}

// The slot holding `id`, else nullptr with *insert at the first free or
// released slot of its probe (nullptr when the table is full). The caller
// holds the lock.
CertificateSlot* find_certificate(CertificateSlot* table, std::size_t slots, std::string_view id,
                                  std::uint64_t hash, CertificateSlot** insert = nullptr) {
    if (insert != nullptr) *insert = nullptr;
    if (slots == 0) return nullptr;
    for (std::size_t i = 0, at = hash % slots; i < slots; ++i, at = (at + 1) % slots) {
        CertificateSlot& s = table[at];
        if (slot_has_id(s, id, hash)) return &s;
        if (s.in_use != slot_used && insert != nullptr && *insert == nullptr) *insert = &s;
        if (s.in_use == slot_free) break;
    }
    return nullptr;
}

}  // namespace

void SharedState::format() {
    if (base_ == nullptr || size_ < min_size()) {
        throw Error("shared memory area of " + std::to_string(size_) +
                    " bytes is too small, need at least " + std::to_string(min_size()));
    }
    // Clear everything first so a re-format also drops stale slots, then
    // build the header in place; the magic goes last.
    std::memset(base_, 0, size_);
    Header* h = new (base_) Header;
    h->magic = 0;
    h->version = layout_version;
    h->size = size_;
    h->lock.store(0, std::memory_order_relaxed);
    h->certificate_overflow = 0;
    h->global_generation.store(0, std::memory_order_relaxed);
    h->challenge_slots = challenge_slots(size_);
    h->certificate_slots = certificate_slots(size_);
    h->tls_alpn_slots = tls_alpn_slots(size_);
    h->tls_alpn_sequence = 0;
    h->journal_floor = 0;
    // Formatting happens before other processes attach (the master, before
    // forking workers), so plain stores suffice; the magic still goes last.
    h->magic = magic_value;
}

bool SharedState::formatted() const {
    if (base_ == nullptr || size_ < min_size()) return false;
    const Header* h = header();
    return h->magic == magic_value && h->version == layout_version && h->size == size_ &&
           h->challenge_slots == challenge_slots(size_) &&
           h->certificate_slots == certificate_slots(size_) &&
           h->tls_alpn_slots == tls_alpn_slots(size_);
}

bool is_http01_token(std::string_view token) {
    if (token.empty() || token.size() > SharedState::max_token) return false;
    for (char c : token) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

bool SharedState::publish_http01(std::string_view token, std::string_view key_authorization) {
    if (token.empty() || token.size() > max_token ||
        key_authorization.size() > max_key_authorization || !formatted()) {
        return false;
    }
    Header* h = header();
    ChallengeSlot* table = challenge_table(base_);
    SpinGuard guard(h->lock);
    ChallengeSlot* free_slot = nullptr;
    ChallengeSlot* slot = nullptr;
    for (std::size_t i = 0; i < h->challenge_slots; ++i) {
        ChallengeSlot& s = table[i];
        if (!s.in_use) {
            if (free_slot == nullptr) free_slot = &s;
        } else if (slot_token(s) == token) {
            slot = &s;  // republished (retried order): replace the answer
            break;
        }
    }
    if (slot == nullptr) slot = free_slot;
    if (slot == nullptr) return false;
    copy_bytes(slot->token, token);
    slot->token_len = static_cast<std::uint32_t>(token.size());
    copy_bytes(slot->key_authorization, key_authorization);
    slot->key_authorization_len = static_cast<std::uint32_t>(key_authorization.size());
    slot->in_use = 1;
    return true;
}

void SharedState::withdraw_http01(std::string_view token) {
    if (token.empty() || token.size() > max_token || !formatted()) return;
    Header* h = header();
    ChallengeSlot* table = challenge_table(base_);
    SpinGuard guard(h->lock);
    for (std::size_t i = 0; i < h->challenge_slots; ++i) {
        ChallengeSlot& s = table[i];
        if (s.in_use && slot_token(s) == token) release(s);
    }
}

std::optional<std::string> SharedState::find_http01(std::string_view token) const {
    if (token.empty() || token.size() > max_token || !formatted()) return std::nullopt;
    Header* h = header();
    const ChallengeSlot* table = challenge_table(base_);
    SpinGuard guard(h->lock);
    for (std::size_t i = 0; i < h->challenge_slots; ++i) {
        const ChallengeSlot& s = table[i];
        if (s.in_use && slot_token(s) == token) {
            return std::string(s.key_authorization, s.key_authorization_len);
        }
    }
    return std::nullopt;
}

bool SharedState::publish_tls_alpn01(std::string_view server_name, std::string_view identifier,
                                     std::string_view digest) {
    if (server_name.empty() || server_name.size() > max_server_name ||
        digest.size() != digest_size || !formatted()) {
        return false;
    }
    // A DNS identifier is its own server name; only IP addresses differ.
    if (identifier == server_name) identifier = {};
    if (identifier.size() > max_ip_identifier) return false;
    Header* h = header();
    TlsAlpnSlot* table = tls_alpn_table(base_, size_);
    SpinGuard guard(h->lock);
    TlsAlpnSlot* slot = nullptr;
    for (std::size_t i = 0; i < h->tls_alpn_slots; ++i) {
        TlsAlpnSlot& s = table[i];
        if (slot_has(s, server_name, digest)) {
            slot = &s;  // republished: it becomes the newest again
            break;
        }
        if (!s.in_use && slot == nullptr) slot = &s;
    }
    if (slot == nullptr) return false;
    copy_bytes(slot->name, server_name);
    slot->name_len = static_cast<std::uint32_t>(server_name.size());
    copy_bytes(slot->identifier, identifier);
    slot->identifier_len = static_cast<std::uint32_t>(identifier.size());
    std::memcpy(slot->digest, digest.data(), digest_size);
    slot->sequence = ++h->tls_alpn_sequence;
    slot->in_use = 1;
    return true;
}

void SharedState::withdraw_tls_alpn01(std::string_view server_name, std::string_view digest) {
    if (server_name.empty() || digest.size() != digest_size || !formatted()) return;
    Header* h = header();
    TlsAlpnSlot* table = tls_alpn_table(base_, size_);
    SpinGuard guard(h->lock);
    for (std::size_t i = 0; i < h->tls_alpn_slots; ++i) {
        if (slot_has(table[i], server_name, digest)) release(table[i]);
    }
}

std::optional<TlsAlpnAnswer> SharedState::find_tls_alpn01(std::string_view server_name) const {
    if (server_name.empty() || server_name.size() > max_server_name || !formatted()) {
        return std::nullopt;
    }
    Header* h = header();
    const TlsAlpnSlot* table = tls_alpn_table(base_, size_);
    SpinGuard guard(h->lock);
    const TlsAlpnSlot* newest = nullptr;
    for (std::size_t i = 0; i < h->tls_alpn_slots; ++i) {
        const TlsAlpnSlot& s = table[i];
        if (s.in_use && std::string_view(s.name, s.name_len) == server_name &&
            (newest == nullptr || s.sequence > newest->sequence)) {
            newest = &s;
        }
    }
    if (newest == nullptr) return std::nullopt;
    TlsAlpnAnswer answer;
    answer.identifier = newest->identifier_len
                            ? std::string(newest->identifier, newest->identifier_len)
                            : std::string(server_name);
    answer.digest.assign(reinterpret_cast<const char*>(newest->digest), digest_size);
    return answer;
}

std::size_t SharedState::withdraw_all_challenges() {
    if (!formatted()) return 0;
    Header* h = header();
    ChallengeSlot* challenges = challenge_table(base_);
    TlsAlpnSlot* tls_alpn = tls_alpn_table(base_, size_);
    std::size_t withdrawn = 0;
    SpinGuard guard(h->lock);
    for (std::size_t i = 0; i < h->challenge_slots; ++i) {
        if (challenges[i].in_use) {
            release(challenges[i]);
            ++withdrawn;
        }
    }
    for (std::size_t i = 0; i < h->tls_alpn_slots; ++i) {
        if (tls_alpn[i].in_use) {
            release(tls_alpn[i]);
            ++withdrawn;
        }
    }
    return withdrawn;
}

void SharedState::certificate_updated(std::string_view cert_id) {
    if (!formatted()) return;
    Header* h = header();
    CertificateSlot* table = certificate_table(base_, size_);
    const std::uint64_t hash = fnv1a(cert_id);
    SpinGuard guard(h->lock);
    CertificateSlot* free_slot = nullptr;
    CertificateSlot* slot =
        find_certificate(table, h->certificate_slots, cert_id, hash, &free_slot);
    if (slot == nullptr && free_slot != nullptr) {
        slot = free_slot;
        copy_bytes(slot->id, cert_id.substr(0, max_cert_id));
        slot->id_len = static_cast<std::uint32_t>(cert_id.size());
        slot->id_hash = hash;
        slot->generation = 0;
        slot->in_use = slot_used;
    }
    // Bumped under the lock, so a reader that sees the new global value
    // also finds the matching per-certificate value.
    std::uint64_t gen = h->global_generation.load(std::memory_order_relaxed) + 1;
    if (slot != nullptr) {
        slot->generation = gen;
        h->journal[gen % journal_size] = {gen, static_cast<std::uint64_t>(slot - table)};
    } else {
        h->certificate_overflow = 1;
    }
    h->global_generation.store(gen, std::memory_order_release);
}

std::uint64_t SharedState::generation(std::string_view cert_id) const {
    if (!formatted()) return 0;
    Header* h = header();
    const CertificateSlot* table = certificate_table(base_, size_);
    const std::uint64_t hash = fnv1a(cert_id);
    SpinGuard guard(h->lock);
    if (const CertificateSlot* s = find_certificate(const_cast<CertificateSlot*>(table),
                                                    h->certificate_slots, cert_id, hash)) {
        return s->generation;
    }
    // With a full table an update may have had nowhere to go: report the
    // global value so workers reload rather than miss a new certificate.
    if (h->certificate_overflow) return h->global_generation.load(std::memory_order_relaxed);
    return 0;
}

std::size_t SharedState::retain_certificates(const std::vector<std::string>& configured) {
    if (!formatted()) return 0;
    Header* h = header();
    CertificateSlot* table = certificate_table(base_, size_);
    // By hash, so that 10,000 certificates cost 10,000 lookups; a slot
    // holds at most max_cert_id bytes of its id, length and hash the rest.
    std::unordered_multimap<std::uint64_t, const std::string*> by_hash;
    by_hash.reserve(configured.size());
    for (const std::string& id : configured) by_hash.emplace(fnv1a(id), &id);
    std::size_t released = 0;
    SpinGuard guard(h->lock);
    for (std::size_t i = 0; i < h->certificate_slots; ++i) {
        CertificateSlot& slot = table[i];
        if (slot.in_use != slot_used) continue;
        auto [from, to] = by_hash.equal_range(slot.id_hash);
        bool kept = std::any_of(from, to, [&](const auto& entry) {
            return slot_has_id(slot, *entry.second, slot.id_hash);
        });
        if (!kept) {
            slot.in_use = slot_released;
            slot.id_len = 0;
            ++released;
        }
    }
    // Released slots lengthen every probe that passes them: put the live
    // ones back where a probe of the emptied table starts. Journal entries
    // written so far may then name moved slots.
    bool rebuild = false;
    for (std::size_t i = 0; i < h->certificate_slots && !rebuild; ++i) {
        rebuild = table[i].in_use == slot_released;
    }
    if (rebuild) {
        std::vector<CertificateSlot> live;
        for (std::size_t i = 0; i < h->certificate_slots; ++i) {
            if (table[i].in_use == slot_used) live.push_back(table[i]);
        }
        std::memset(static_cast<void*>(table), 0, h->certificate_slots * sizeof(CertificateSlot));
        for (const CertificateSlot& s : live) {
            std::size_t at = s.id_hash % h->certificate_slots;
            while (table[at].in_use != slot_free) at = (at + 1) % h->certificate_slots;
            table[at] = s;
        }
        h->journal_floor = h->global_generation.load(std::memory_order_relaxed);
    }
    // Workers of the new configuration read every certificate at start:
    // an update that found no room before is no longer missed.
    if (released > 0) h->certificate_overflow = 0;
    return released;
}

bool SharedState::updated_since(std::uint64_t since, std::vector<std::string>* ids) const {
    ids->clear();
    if (!formatted()) return false;
    Header* h = header();
    const CertificateSlot* table = certificate_table(base_, size_);
    SpinGuard guard(h->lock);
    std::uint64_t now = h->global_generation.load(std::memory_order_relaxed);
    if (since > now || now - since > journal_size || since < h->journal_floor ||
        h->certificate_overflow) {
        return false;
    }
    for (std::uint64_t gen = since + 1; gen <= now; ++gen) {
        const JournalEntry& e = h->journal[gen % journal_size];
        if (e.generation != gen || e.slot >= h->certificate_slots) return false;
        const CertificateSlot& s = table[e.slot];
        // Released since (no longer configured), or reused by a newer
        // update, which has an entry of its own.
        if (s.in_use != slot_used || s.generation < gen) continue;
        if (s.id_len > max_cert_id) return false;  // only a prefix is kept
        ids->emplace_back(s.id, s.id_len);
    }
    return true;
}

std::uint64_t SharedState::global_generation() const {
    if (!formatted()) return 0;
    return header()->global_generation.load(std::memory_order_acquire);
}

}  // namespace acme
